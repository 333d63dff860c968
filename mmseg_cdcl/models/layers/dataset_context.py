"""Routing of samples to dataset branches: which dataset each sample of a forward belongs to."""
from contextlib import contextmanager
from typing import Iterator, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

DatasetIndex = Union[int, Sequence[int], Tensor]


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
        if isinstance(dataset_idx, int):
            return cls(((dataset_idx, slice(None)), ), dataset_idx, None, True)
        idx = torch.as_tensor(dataset_idx, dtype=torch.long, device='cpu')
        if idx.dim() != 1 or idx.numel() == 0:
            raise ValueError('dataset_idx must be an int or a non-empty 1-D sequence with one '
                             f'dataset index per sample, got shape {tuple(idx.shape)}')
        # Runs of equal indices: contiguous groups become slices (views, no copy).
        values, counts = torch.unique_consecutive(idx, return_counts=True)
        values, counts = values.tolist(), counts.tolist()
        if len(values) == 1:
            return cls(((values[0], slice(None)), ), values[0], idx.numel(), True)
        num = len(set(values))
        cycle = idx[:num]
        # Alternating datasets, each every num-th sample: strided slices (views, no copy).
        alternate = (idx.numel() % num == 0 and len(set(cycle.tolist())) == num
                     and torch.equal(idx.view(-1, num), cycle.expand(idx.numel() // num, num)))
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


class DatasetAwareModule:
    """Mixin of modules that behave per dataset (DSBN, per-dataset classifiers).

    :func:`dataset_context` sets their routing; ``num_datasets`` is the number of branches.
    """
    num_datasets: int
    _routing: Optional[DatasetRouting] = None

    def check_routing(self, routing: DatasetRouting, name: str) -> None:
        for d in routing.datasets:
            if not 0 <= d < self.num_datasets:
                raise IndexError(f'dataset index {d} is out of range for {type(self).__name__} '
                                 f"'{name}' with num_datasets={self.num_datasets}")

    def routing(self, batch_size: int) -> DatasetRouting:
        """The routing of the current forward, checked against its batch size.

        Raises:
            RuntimeError: called outside :func:`dataset_context` with several datasets.
        """
        routing = self._routing
        if routing is None:
            if self.num_datasets == 1:
                return _ONLY_DATASET
            raise RuntimeError(
                f'{type(self).__name__}({self.extra_repr()}) was called outside '
                f'mmseg_cdcl.dataset_context: with num_datasets={self.num_datasets} it needs to '
                'know which dataset each sample comes from; wrap the forward in '
                '`with dataset_context(model, dataset_idx):`')
        if routing.num_samples not in (None, batch_size):
            raise ValueError(f'{type(self).__name__} got a batch of {batch_size} samples but '
                             f'dataset_context was given {routing.num_samples} dataset indices')
        return routing


_ONLY_DATASET = DatasetRouting.build(0)


@contextmanager
def dataset_context(model: nn.Module, dataset_idx: DatasetIndex) -> Iterator[DatasetRouting]:
    """Route the forwards inside the block to dataset branches.

    Args:
        model (nn.Module): Every dataset-aware module (DSBN, DAB heads) inside it is routed.
        dataset_idx (int | Sequence[int] | Tensor): The dataset of the whole batch, or one
            dataset index per sample.

    Example:
        >>> with dataset_context(model, [0, 0, 1, 1]):
        ...     feats = model.backbone(images)
    """
    routing = DatasetRouting.build(dataset_idx)
    modules = [(name, m) for name, m in model.named_modules() if isinstance(m, DatasetAwareModule)]
    for name, module in modules:
        module.check_routing(routing, name)
    previous = [module._routing for _, module in modules]
    for _, module in modules:
        module._routing = routing
    try:
        yield routing
    finally:
        for (_, module), routing_before in zip(modules, previous):
            module._routing = routing_before
