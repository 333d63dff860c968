"""Running statistics other than BatchNorm's, one per dataset (EMANet's bases).

A module that updates a buffer from its inputs in training (EMANet's ``EMAModule.bases``, a
moving average of the features' bases) holds a statistic of the data, as BatchNorm's running
mean does: shared, one dataset's samples would change the forward of another's. Such buffers
are found, not listed (:func:`updated_buffers`: a training forward, compared before and after),
and their modules become :class:`DatasetStatistics`, one copy per dataset, as DSBN keeps
BatchNorm's statistics per dataset.
"""

import copy
from typing import Callable, Dict, List, Sequence

import torch
from torch import Tensor, nn

from .dataset_branches import DatasetBranches
from .dataset_context import DatasetAwareModule
from .dsbn import DSBN


class DatasetStatistics(DatasetBranches):
    """Dataset i's copy of a module whose buffers its forward updates from the inputs in
    training runs on dataset i's samples, and only they update its statistics. A batch mixing
    datasets runs each copy on its dataset's samples (the module's output must then be a
    tensor with one row per sample). Checkpoint keys are ``<name>.<i>.<key>``, and a plain
    checkpoint's ``<name>.<key>`` loads into every copy (:class:`DatasetBranches`).

    Args:
        branches (Iterable[nn.Module]): One copy per dataset, in dataset index order.
    """

    def forward(self, x, *args, **kwargs):
        routing = self.routing(x.shape[0])
        if routing.single is not None:
            return self[routing.single](x, *args, **kwargs)
        parts = [
            self[d](part, *args, **kwargs) for (d, _), part in zip(routing.groups, routing.split(x))
        ]
        if not all(isinstance(p, Tensor) for p in parts):
            raise TypeError(
                f'DatasetStatistics({self.extra_repr()}) of {type(self[0]).__name__} '
                'got a batch of several datasets, but the module does not return '
                "one tensor to put the datasets' rows back together"
            )
        if routing.split_sizes is not None:
            return torch.cat(parts)
        out = parts[0].new_empty((routing.num_samples, *parts[0].shape[1:]))
        for (_, rows), part in zip(routing.groups, parts):
            out[rows] = part
        return out

    @classmethod
    def of(cls, module: nn.Module, num_datasets: int) -> 'DatasetStatistics':
        """One copy of ``module`` per dataset, state included; in dataset d's copy every
        dataset-aware module inside (DSBN, per-dataset classifiers) is its branch d."""
        return cls(_branch(module, d) for d in range(num_datasets))


def _branch(module: nn.Module, d: int) -> nn.Module:
    module = copy.deepcopy(module)
    if isinstance(module, DatasetAwareModule):
        return _branch_of(module, d)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, DatasetAwareModule):
                setattr(parent, name, _branch_of(child, d))
    return module


def _branch_of(module: DatasetAwareModule, d: int) -> nn.Module:
    return module.bns[d] if isinstance(module, DSBN) else module[d]


def updated_buffers(
    model: nn.Module, forward: Callable[[], object], candidates: Sequence[str]
) -> List[str]:
    """The buffers among ``candidates`` (names in ``model``) that a training forward changes.

    ``forward`` runs with ``model`` in training mode, without gradients and on a fork of the
    CPU's random numbers; afterwards the model is as before: every buffer (BatchNorm's running
    statistics too), each module's training mode, the random state.
    """
    modules = list(model.modules())
    training = [m.training for m in modules]
    held = [dict(m._buffers) for m in modules]
    values: Dict[int, Tensor] = {
        id(t): t.clone() for buffers in held for t in buffers.values() if t is not None
    }
    before = {name: model.get_buffer(name).clone() for name in candidates}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.train()
            forward()
        changed = [name for name in candidates if not _same(before[name], _buffer(model, name))]
    finally:
        with torch.no_grad():
            for m, mode, buffers in zip(modules, training, held):
                m.training = mode
                m._buffers = buffers  # also drops buffers the forward registered
                for t in buffers.values():
                    if t is not None:
                        t.copy_(values[id(t)])
        for m in modules:
            if isinstance(m, DatasetAwareModule):
                m.forget_routing()
    return changed


def _buffer(model: nn.Module, name: str):
    owner, _, attr = name.rpartition('.')
    return model.get_submodule(owner)._buffers.get(attr)


def _same(a: Tensor, b) -> bool:
    return (
        isinstance(b, Tensor)
        and a.shape == b.shape
        and a.dtype == b.dtype
        and torch.equal(a, b.to(a.device))
    )
