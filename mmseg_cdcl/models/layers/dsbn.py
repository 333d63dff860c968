"""Dataset-Specific BatchNorm (DSBN), the norm of CDCL's Dataset-Aware Block."""

import copy
import re
from typing import Optional

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .dataset_context import DatasetAwareModule, DatasetRouting
from .grouped_batch_norm import groupable, grouped_batch_norm, interleavable, interleaved_batch_norm

# The norm of Dataset-Aware Blocks when a config names none (num_datasets comes from the block).
DSBN_CFG = dict(type='DSBN', requires_grad=True)
_BN_STATE = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


class DatasetBatchTooSmall(ValueError):
    """A dataset's samples in a training batch give one value per channel to a BatchNorm."""

    def __init__(self, message: str, dataset: int):
        super().__init__(message)
        self.dataset = dataset


@MODELS.register_module()
class DSBN(DatasetAwareModule, nn.Module):
    """Dataset-Specific BatchNorm: one BatchNorm per dataset behind a shared conv.

    DSBN_i(X_i) = γ_i·(X_i−μ_i)/√(σ_i²+ε) + β_i, with μ_i, σ_i² the batch statistics of dataset
    i's samples and γ_i, β_i and the running statistics kept per dataset. Which dataset each
    sample belongs to is set by :func:`mmseg_cdcl.dataset_context`; a batch mixing datasets is
    normalised group by group in one forward, and one of alternating datasets (A, B, A, B, ...,
    as ``MultiDatasetSampler`` makes it) in one BatchNorm call, without copies. A branch whose
    dataset has no sample in a forward is not called: its statistics stay as they are. With
    ``num_datasets=1`` it is ``nn.BatchNorm2d``.

    A plain BatchNorm state dict (e.g. ImageNet ``resnet18_v1c``) loads into every branch.
    :meth:`convert_dsbn` turns the BatchNorms of a built model into DSBNs.

    Args:
        num_features (int): Channels of the input.
        num_datasets (int): Number of datasets, i.e. of BatchNorm branches.
        sync (bool): Use ``nn.SyncBatchNorm`` branches (statistics over all GPUs). Defaults to
            False. mmengine's ``sync_bn='torch'`` converts the branches as well. Every process
            must then have samples of the same datasets in a forward (as the sampler's batches
            do), since only those branches synchronise.
        branch (nn.Module, optional): A BatchNorm (any ``_BatchNorm``, e.g. ``BatchNorm1d`` or
            ``SyncBatchNorm``) whose copies, state included, are the branches.
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats`` of each branch.

    Example:
        >>> norm_cfg = dict(type='DSBN', num_datasets=2, requires_grad=True)
        >>> backbone = dict(type='ResNetV1c', depth=18, norm_cfg=norm_cfg)
    """

    _abbr_ = 'bn'  # layer names and checkpoint keys stay MMSeg's (bn1, ...)
    branch_prefix = 'bns.'

    def __init__(
        self,
        num_features: int,
        num_datasets: int,
        sync: bool = False,
        branch: Optional[nn.Module] = None,
        **kwargs,
    ):
        super().__init__()
        if not isinstance(num_datasets, int) or num_datasets < 1:
            raise ValueError(f'DSBN num_datasets must be a positive int, got {num_datasets!r}')
        self.num_features = num_features
        self.num_datasets = num_datasets
        if branch is None:
            norm = nn.SyncBatchNorm if sync else nn.BatchNorm2d
            branch = norm(num_features, **kwargs)
        self.bns = nn.ModuleList(copy.deepcopy(branch) for _ in range(num_datasets))

    @classmethod
    def convert_dsbn(cls, module: nn.Module, num_datasets: int) -> nn.Module:
        """Every BatchNorm of ``module`` (BatchNorm1d/2d/3d or SyncBatchNorm, built through a
        ``norm_cfg`` or directly) becomes a DSBN of ``num_datasets`` copies of it, state and
        ``requires_grad`` included; as ``nn.SyncBatchNorm.convert_sync_batchnorm``, it returns
        the converted module. Per-dataset modules (DSBN, ``DatasetBranches``) stay as they are.
        """
        if isinstance(module, _BatchNorm):
            return cls(module.num_features, num_datasets, branch=module)
        for name, child in module.named_children():
            if isinstance(child, DatasetAwareModule):
                continue
            converted = cls.convert_dsbn(child, num_datasets)
            if converted is not child:
                setattr(module, name, converted)
        return module

    def forward(self, x: Tensor) -> Tensor:
        routing = self.routing(x.shape[0])
        branches = list(self.bns)  # ModuleList's indexing costs more than a BatchNorm's call
        first = branches[0]
        if first.training or not first.track_running_stats:
            self._check_values_per_channel(x, routing)
        if routing.single is not None:
            return branches[routing.single](x)  # which checks the input's dimensions
        first._check_input_dim(x)  # the same error whatever path a mixed batch takes
        bns = [branches[d] for d in routing.datasets]
        # One BatchNorm call for several datasets, where no branch synchronises over GPUs.
        fused = (
            x.dim() == 4
            and not self._synchronising()
            and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))
        )
        if routing.interleave and fused and interleavable(bns):
            # Alternating datasets (the sampler's batches): one BatchNorm, no copies.
            return interleaved_batch_norm(x, bns)
        if routing.split_sizes is not None and fused and groupable(bns):
            # Contiguous groups: written into one output, no copy forward.
            return grouped_batch_norm(x, routing.split_sizes, bns)
        if routing.split_sizes is not None:
            # Split views: their backward is one concatenation of the gradients, where
            # indexing by slices zero-fills a full-size gradient per dataset and sums them.
            parts = [bn(part) for bn, part in zip(bns, x.split(routing.split_sizes))]
            return torch.cat(parts)
        # Dense copies: BatchNorm's kernels for a strided batch are slower and sum otherwise.
        fmt = (
            torch.channels_last
            if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        out = torch.empty_like(x)
        for bn, (_, rows) in zip(bns, routing.groups):
            out[rows] = bn(x[rows].contiguous(memory_format=fmt))
        return out

    def _synchronising(self) -> bool:
        """Whether the branches are SyncBatchNorms that synchronise in this forward."""
        return (
            isinstance(self.bns[0], nn.SyncBatchNorm)
            and self.bns[0].training
            and torch.distributed.is_available()
            and torch.distributed.is_initialized()
        )

    def _check_values_per_channel(self, x: Tensor, routing: DatasetRouting) -> None:
        """BatchNorm's own check, per dataset: the grouped paths would write NaN statistics."""
        per_sample = x[0].numel() // x.shape[1] if x.numel() else 1
        for (d, _), rows in zip(routing.groups, routing.positions(x.shape[0])):
            count = len(rows) * per_sample
            if count <= 1:
                raise DatasetBatchTooSmall(
                    f'DSBN({self.extra_repr()}): dataset {d} has {count} value per channel in '
                    f'this training batch (input {tuple(x.shape)}); its batch statistics need '
                    'more than 1, e.g. 2 or more of its samples per process before a 1x1 '
                    'pooling',
                    dataset=d,
                )

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        branch_keys = re.compile(re.escape(prefix) + r'bns\.(\d+)\.')
        branches = {int(m.group(1)) for k in state_dict if (m := branch_keys.match(k))}
        if branches and branches != set(range(self.num_datasets)):
            raise ValueError(
                f"DSBN '{prefix[:-1]}': the checkpoint has {len(branches)} dataset branches "
                f'but the model has num_datasets={self.num_datasets}'
            )
        if not branches:
            # A plain BatchNorm checkpoint: every dataset starts from its statistics.
            for key in _BN_STATE:
                if prefix + key in state_dict:
                    value = state_dict.pop(prefix + key)
                    for d in range(self.num_datasets):
                        state_dict[f'{prefix}bns.{d}.{key}'] = value
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    @staticmethod
    def plain_cfg(norm_cfg: dict) -> dict:
        """The BatchNorm config one dataset's branch of this DSBN config is."""
        plain = {k: v for k, v in norm_cfg.items() if k not in ('type', 'num_datasets', 'sync')}
        return dict(type='SyncBN' if norm_cfg.get('sync') else 'BN', **plain)

    def extra_repr(self) -> str:
        return f'{self.num_features}, num_datasets={self.num_datasets}'


def dsbn_cfg(norm_cfg: dict, num_datasets: int, owner: str) -> dict:
    """``norm_cfg`` with a DSBN's ``num_datasets`` filled in; other norms pass unchanged.

    Raises:
        ValueError: the config sets a different ``num_datasets``; ``owner`` names the module.
    """
    norm_cfg = dict(norm_cfg)
    if norm_cfg.get('type') not in ('DSBN', DSBN):
        return norm_cfg
    given = norm_cfg.setdefault('num_datasets', num_datasets)
    if given != num_datasets:
        raise ValueError(
            f'{owner}: norm_cfg has num_datasets={given} but the module is built '
            f'for {num_datasets} datasets'
        )
    return norm_cfg
