"""Dataset-Specific BatchNorm (DSBN), the norm of CDCL's Dataset-Aware Block."""
import re

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from .dataset_context import DatasetAwareModule
from .grouped_batch_norm import (groupable, grouped_batch_norm, interleavable,
                                 interleaved_batch_norm)

# The norm of Dataset-Aware Blocks when a config names none (num_datasets comes from the block).
DSBN_CFG = dict(type='DSBN', requires_grad=True)
_BN_STATE = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


@MODELS.register_module()
class DSBN(DatasetAwareModule, nn.Module):
    """Dataset-Specific BatchNorm: one BatchNorm per dataset behind a shared conv.

    DSBN_i(X_i) = γ_i·(X_i−μ_i)/√(σ_i²+ε) + β_i, with μ_i, σ_i² the batch statistics of dataset
    i's samples and γ_i, β_i and the running statistics kept per dataset. Which dataset each
    sample belongs to is set by :func:`mmseg_cdcl.dataset_context`; a batch mixing datasets is
    normalised group by group in one forward, and one of alternating datasets (A, B, A, B, ...,
    as ``MultiDatasetSampler`` makes it) in one BatchNorm call, without copies. With
    ``num_datasets=1`` it is ``nn.BatchNorm2d``.

    A plain BatchNorm state dict (e.g. ImageNet ``resnet18_v1c``) loads into every branch.

    Args:
        num_features (int): Channels of the input.
        num_datasets (int): Number of datasets, i.e. of BatchNorm branches.
        sync (bool): Use ``nn.SyncBatchNorm`` branches (statistics over all GPUs). Defaults to
            False. mmengine's ``sync_bn='torch'`` converts the branches as well.
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats`` of each branch.

    Example:
        >>> norm_cfg = dict(type='DSBN', num_datasets=2, requires_grad=True)
        >>> backbone = dict(type='ResNetV1c', depth=18, norm_cfg=norm_cfg)
    """
    _abbr_ = 'bn'  # layer names and checkpoint keys stay MMSeg's (bn1, ...)

    def __init__(self, num_features: int, num_datasets: int, sync: bool = False, **kwargs):
        super().__init__()
        if not isinstance(num_datasets, int) or num_datasets < 1:
            raise ValueError(f'DSBN num_datasets must be a positive int, got {num_datasets!r}')
        self.num_features = num_features
        self.num_datasets = num_datasets
        norm = nn.SyncBatchNorm if sync else nn.BatchNorm2d
        self.bns = nn.ModuleList(norm(num_features, **kwargs) for _ in range(num_datasets))

    def forward(self, x: Tensor) -> Tensor:
        routing = self.routing(x.shape[0])
        sync = self._syncs_all_branches()
        if routing.single is not None and not sync:
            return self.bns[routing.single](x)
        bns = [self.bns[d] for d in routing.datasets]
        if routing.interleave and x.dim() == 4 and interleavable(bns) and (
                x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            # Alternating datasets (the sampler's batches): one BatchNorm, no copies.
            return interleaved_batch_norm(x, bns)
        if routing.split_sizes is not None and groupable(bns):
            # Contiguous groups: written into one output, no copy forward.
            return grouped_batch_norm(x, routing.split_sizes, bns)
        if routing.split_sizes is not None:
            # Split views: their backward is one concatenation of the gradients, where
            # indexing by slices zero-fills a full-size gradient per dataset and sums them.
            parts = [self.bns[d](part)
                     for (d, _), part in zip(routing.groups, x.split(routing.split_sizes))]
        else:
            # Dense copies: BatchNorm's kernels for a strided batch are slower and sum otherwise.
            fmt = (torch.channels_last if x.dim() == 4 and x.is_contiguous(
                memory_format=torch.channels_last) else torch.contiguous_format)
            parts = [self.bns[d](x[rows].contiguous(memory_format=fmt))
                     for d, rows in routing.groups]
        if sync:
            # Every rank must enter every branch's all-reduce, also with no sample of its own.
            for d in set(range(self.num_datasets)) - set(routing.datasets):
                self.bns[d](x[:0])
        if routing.single is not None:
            return parts[0]
        if routing.contiguous:
            return torch.cat(parts)
        out = torch.empty_like(x)
        for (_, rows), part in zip(routing.groups, parts):
            out[rows] = part
        return out

    def _syncs_all_branches(self) -> bool:
        return (self.training and isinstance(self.bns[0], nn.SyncBatchNorm)
                and torch.distributed.is_available() and torch.distributed.is_initialized())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        branch_keys = re.compile(re.escape(prefix) + r'bns\.(\d+)\.')
        branches = {int(m.group(1)) for k in state_dict if (m := branch_keys.match(k))}
        if branches and branches != set(range(self.num_datasets)):
            raise ValueError(
                f"DSBN '{prefix[:-1]}': the checkpoint has {len(branches)} dataset branches "
                f'but the model has num_datasets={self.num_datasets}')
        if not branches:
            # A plain BatchNorm checkpoint: every dataset starts from its statistics.
            for key in _BN_STATE:
                if prefix + key in state_dict:
                    value = state_dict.pop(prefix + key)
                    for d in range(self.num_datasets):
                        state_dict[f'{prefix}bns.{d}.{key}'] = value
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

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
        raise ValueError(f'{owner}: norm_cfg has num_datasets={given} but the module is built '
                         f'for {num_datasets} datasets')
    return norm_cfg
