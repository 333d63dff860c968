"""Routing of samples to dataset branches: which dataset each sample of a forward belongs to."""

import numbers
from contextlib import contextmanager
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

DatasetIndex = Union[int, Sequence[int], Tensor, np.ndarray]


class DatasetRouting(NamedTuple):
    """Where the samples of a batch go.

    ``groups`` holds one ``(dataset, rows)`` pair per dataset present, where ``rows`` is a slice
    when the dataset's samples are contiguous or alternate with the other datasets' in a fixed
    cycle (A, B, A, B, ..., as the sampler makes them), and an index tensor otherwise.
    ``single`` is the dataset of a batch routed as a whole, ``num_samples`` is None then.
    ``split_sizes`` are the groups' sizes when they are contiguous (for ``Tensor.split``);
    ``interleave`` is the cycle's length when the samples alternate.
    """

    groups: Tuple[Tuple[int, Union[slice, Tensor]], ...]
    single: Optional[int]
    num_samples: Optional[int]
    contiguous: bool
    split_sizes: Optional[Tuple[int, ...]] = None
    interleave: Optional[int] = None

    @classmethod
    def build(cls, dataset_idx: DatasetIndex) -> 'DatasetRouting':
        if isinstance(dataset_idx, DatasetRouting):
            return dataset_idx
        if isinstance(dataset_idx, numbers.Integral) and not isinstance(dataset_idx, bool):
            return cls(((int(dataset_idx), slice(None)),), int(dataset_idx), None, True)
        idx = (
            dataset_idx.detach().cpu()
            if isinstance(dataset_idx, Tensor)
            else torch.as_tensor(np.asarray(dataset_idx))
        )
        if idx.dim() == 0 and not idx.is_floating_point() and idx.dtype != torch.bool:
            return cls.build(int(idx))  # a numpy or torch scalar: the whole batch
        if idx.dim() != 1 or idx.numel() == 0 or idx.is_floating_point() or idx.dtype == torch.bool:
            raise ValueError(
                'dataset_idx must be an int or a non-empty 1-D sequence with one '
                f'integer dataset index per sample, got {dataset_idx!r}'
            )
        idx = idx.long()
        # Runs of equal indices: contiguous groups become slices (views, no copy).
        values, counts = torch.unique_consecutive(idx, return_counts=True)
        values, counts = values.tolist(), counts.tolist()
        if len(values) == 1:
            return cls(((values[0], slice(None)),), values[0], idx.numel(), True)
        num = len(set(values))
        cycle = idx[:num]
        # Alternating datasets, each every num-th sample: strided slices (views, no copy).
        alternate = (
            idx.numel() % num == 0
            and len(set(cycle.tolist())) == num
            and torch.equal(idx.view(-1, num), cycle.expand(idx.numel() // num, num))
        )
        if num == len(values):
            starts = [0] + torch.tensor(counts).cumsum(0).tolist()
            groups = tuple((d, slice(starts[i], starts[i + 1])) for i, d in enumerate(values))
            return cls(groups, None, idx.numel(), True, tuple(counts), num if alternate else None)
        if alternate:
            groups = tuple((d, slice(i, None, num)) for i, d in enumerate(cycle.tolist()))
            return cls(groups, None, idx.numel(), False, None, num)
        groups = tuple((d, (idx == d).nonzero().flatten()) for d in sorted(set(values)))
        return cls(groups, None, idx.numel(), False)

    @property
    def datasets(self) -> Tuple[int, ...]:
        return tuple(d for d, _ in self.groups)

    def positions(self, num_samples: int) -> Tuple[List[int], ...]:
        """Each group's positions in a batch of ``num_samples`` samples, in the order of
        ``groups`` (to pick the group's data samples, or any per-sample list)."""
        if self.num_samples not in (None, num_samples):
            raise ValueError(
                f'a routing of {self.num_samples} samples cannot partition a batch of {num_samples}'
            )
        every = range(num_samples)
        return tuple(
            list(every[rows]) if isinstance(rows, slice) else rows.tolist()
            for _, rows in self.groups
        )

    def split(self, x: Tensor) -> Tuple[Tensor, ...]:
        """``x``'s rows of each group, each a dense tensor, in the order of ``groups``. The
        backward of the parts is one concatenation (contiguous groups) or one interleaving
        (alternating groups) of their gradients. A list or tuple (a backbone's outputs) is
        split tensor by tensor, one of its type per group; anything else is every group's."""
        if not isinstance(x, Tensor):
            if isinstance(x, (list, tuple)):
                parts = [self.split(element) for element in x]
                return tuple(type(x)(p[g] for p in parts) for g in range(len(self.groups)))
            return (x,) * len(self.groups)
        if self.single is not None:
            return (x,)
        if self.split_sizes is not None:
            return x.split(self.split_sizes)
        if self.interleave is not None:
            return tuple(
                part.contiguous() for part in x.reshape(-1, self.interleave, *x.shape[1:]).unbind(1)
            )
        return tuple(x.index_select(0, rows.to(x.device)) for _, rows in self.groups)


class DatasetAwareModule:
    """Mixin of modules that behave per dataset (DSBN, per-dataset classifiers).

    :func:`dataset_context` sets their routing; ``num_datasets`` is the number of branches.
    The routing of their last forward is kept for a recomputation during the backward
    (gradient checkpointing, MMSeg's ``with_cp``), which runs after the context has exited.
    """

    num_datasets: int
    # Dataset d's state lies under '<module>.<branch_prefix><d>.' in state dicts: loading maps
    # a checkpoint's branches to the model's by dataset name through it.
    branch_prefix = ''
    _routing: Optional[DatasetRouting] = None
    _last_routing: Optional[DatasetRouting] = None
    _several_routings: bool = False

    def check_routing(self, routing: DatasetRouting, name: str) -> None:
        for d in routing.datasets:
            if not 0 <= d < self.num_datasets:
                raise IndexError(
                    f'dataset index {d} is out of range for {type(self).__name__} '
                    f"'{name}' with num_datasets={self.num_datasets}"
                )

    def routing(self, batch_size: int) -> DatasetRouting:
        """The routing of the current forward, checked against its batch size.

        Raises:
            RuntimeError: called outside :func:`dataset_context` with several datasets.
        """
        routing = self._routing
        if routing is None and torch._C._current_autograd_node() is not None:
            routing = self._recomputed_routing()
        if routing is None:
            if self.num_datasets == 1:
                return _ONLY_DATASET
            raise RuntimeError(
                f'{type(self).__name__}({self.extra_repr()}) was called outside '
                f'mmseg_cdcl.dataset_context: with num_datasets={self.num_datasets} it needs to '
                'know which dataset each sample comes from; wrap the forward in '
                '`with dataset_context(model, dataset_idx):`'
            )
        if routing.num_samples not in (None, batch_size):
            raise ValueError(
                f'{type(self).__name__} got a batch of {batch_size} samples but '
                f'dataset_context was given {routing.num_samples} dataset indices'
            )
        if routing is not self._last_routing:
            _set(self, '_several_routings', self._last_routing is not None)
            _set(self, '_last_routing', routing)
        return routing

    def _recomputed_routing(self) -> Optional[DatasetRouting]:
        """The routing of a forward that gradient checkpointing runs again in the backward."""
        if self._several_routings:
            raise RuntimeError(
                f'{type(self).__name__}({self.extra_repr()}) is recomputed in the backward '
                '(gradient checkpointing) but ran for several dataset routings in this step, so '
                'which one to use is unknown: use with_cp only in modules that run once per step '
                '(the backbone and neck)'
            )
        return self._last_routing

    def forget_routing(self) -> None:
        """Start a training step: forget the routings of earlier forwards."""
        self._last_routing, self._several_routings = None, False


_ONLY_DATASET = DatasetRouting.build(0)
# The routing attributes are plain values: set without nn.Module.__setattr__'s checks for
# parameters, buffers and submodules, which took ~4% of a small model's routed inference.
_set = object.__setattr__


def dataset_aware_modules(model: nn.Module) -> List[Tuple[str, DatasetAwareModule]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, DatasetAwareModule)]


@contextmanager
def dataset_context(
    model: nn.Module, dataset_idx: DatasetIndex, modules: Optional[List[DatasetAwareModule]] = None
) -> Iterator[DatasetRouting]:
    """Route the forwards inside the block to dataset branches.

    Args:
        model (nn.Module): Every dataset-aware module (DSBN, per-dataset classifiers) inside it
            is routed.
        dataset_idx (int | Sequence[int] | Tensor | DatasetRouting): The dataset of the whole
            batch, or one dataset index per sample.
        modules (list, optional): ``model``'s dataset-aware modules, if the caller keeps them
            (walking a large model's modules takes most of a routing's time).

    Example:
        >>> with dataset_context(model, [0, 0, 1, 1]):
        ...     feats = model.backbone(images)
    """
    routing = DatasetRouting.build(dataset_idx)
    if modules is None:
        modules = [m for m in model.modules() if isinstance(m, DatasetAwareModule)]
    low, high = min(routing.datasets), max(routing.datasets)
    if modules and (low < 0 or high >= min(m.num_datasets for m in modules)):
        for name, module in dataset_aware_modules(model):
            module.check_routing(routing, name)
    previous = [module._routing for module in modules]
    for module in modules:
        _set(module, '_routing', routing)
    try:
        yield routing
    finally:
        for module, routing_before in zip(modules, previous):
            _set(module, '_routing', routing_before)
