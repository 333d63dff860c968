"""DSBN's mixed batch without copies: each dataset's samples through its own BatchNorm."""

import warnings
from functools import lru_cache
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function

aten = torch.ops.aten


def groupable(bns: Sequence[nn.Module]) -> bool:
    """Whether :func:`grouped_batch_norm` computes exactly what these branches' forwards do:
    ``nn.BatchNorm2d`` (or ``nn.SyncBatchNorm`` that does not synchronise: the caller checks)
    with running statistics and a momentum (the BatchNorm defaults)."""
    return all(
        type(bn).forward in _BATCH_NORM_FORWARDS
        and bn.track_running_stats
        and bn.momentum is not None
        for bn in bns
    )


# BatchNorm2d's and SyncBatchNorm's forward (which subclasses such as mmengine's SyncBatchNorm,
# what MMSeg configs' 'SyncBN' builds, keep): F.batch_norm of the module's state.
_BATCH_NORM_FORWARDS = (nn.BatchNorm2d.forward, nn.SyncBatchNorm.forward)


def interleaved_batch_norm(x: Tensor, bns: Sequence[nn.BatchNorm2d]) -> Tensor:
    """DSBN of a batch whose samples cycle through the datasets (A, B, A, B, ...): one BatchNorm.

    Seen as ``(N / G, G * C, H, W)``, a contiguous (NCHW) batch of G alternating datasets holds
    dataset g's channel c at channel ``g * C + c``, so one BatchNorm call with the branches'
    parameters and running statistics side by side normalises each dataset with its own
    statistics: no copy of the activations forward or backward, and to the bit what separate
    BatchNorms compute on each dataset's samples. A channels_last batch cannot be seen so: it is
    made NCHW and back, two copies each way. Takes branches for which :func:`interleavable`
    holds, in the cycle's dataset order.
    """
    if not x.is_contiguous():
        warnings.warn(
            'DSBN got a channels_last batch of alternating datasets, which it copies to NCHW '
            'and back; for channels_last models, set MultiDatasetSampler(interleave=False)'
        )
        out = interleaved_batch_norm(x.contiguous(), bns)
        return out.contiguous(memory_format=torch.channels_last)
    num, first = len(bns), bns[0]
    n, c = x.shape[:2]
    weight, bias = (
        (None if getattr(first, key) is None else torch.cat([getattr(bn, key) for bn in bns]))
        for key in ('weight', 'bias')
    )
    mean, var = (
        torch.cat([getattr(bn, key) for bn in bns]) for key in ('running_mean', 'running_var')
    )
    out = F.batch_norm(
        x.view(n // num, num * c, *x.shape[2:]),
        mean,
        var,
        weight,
        bias,
        first.training,
        first.momentum,
        first.eps,
    )
    if first.training:  # the running statistics were updated side by side
        for bn, bn_mean, bn_var in zip(bns, mean.chunk(num), var.chunk(num)):
            bn.running_mean.copy_(bn_mean)
            bn.running_var.copy_(bn_var)
            bn.num_batches_tracked.add_(1)
    # Not a view for autograd: the in-place ReLU of a Dataset-Aware Block on a view would make
    # autograd copy the whole activation (CopySlices) forward and backward.
    return aten._unsafe_view(out, x.shape)


def interleavable(bns: Sequence[nn.Module]) -> bool:
    """Whether :func:`interleaved_batch_norm` computes what these branches' forwards do: alike
    branches for which :func:`groupable` holds."""
    return (
        groupable(bns)
        and len(
            {(bn.training, bn.eps, bn.momentum, bn.affine, bn.running_mean.dtype) for bn in bns}
        )
        == 1
    )


def grouped_batch_norm(x: Tensor, sizes: Sequence[int], bns: Sequence[nn.BatchNorm2d]) -> Tensor:
    """``torch.cat([bn(part) for bn, part in zip(bns, x.split(sizes))])`` without the copies.

    Every group's normalisation is written into its rows of one output, and its input gradient
    into its rows of one gradient; the same kernels, statistics and running-statistics updates
    as the separate forwards, to the bit. Takes branches for which :func:`groupable` holds.
    """
    params = [p for bn in bns for p in (bn.weight, bn.bias)]
    return _GroupedBatchNorm.apply(x, tuple(sizes), tuple(bns), *params)


class _GroupedBatchNorm(Function):
    @staticmethod
    def forward(ctx, x: Tensor, sizes, bns, *params: Optional[Tensor]) -> Tensor:
        out = torch.empty_like(x)  # keeps x's memory format (channels_last): rows stay dense
        stat_dtype = _stat_dtype(x, bns[0])  # the branches of one DSBN share their dtypes
        stats, start = [], 0
        for size, bn in zip(sizes, bns):
            if bn.training:
                bn.num_batches_tracked.add_(1)
            mean, invstd = (x.new_empty(0, dtype=stat_dtype) for _ in range(2))
            aten.native_batch_norm.out(
                x.narrow(0, start, size),
                bn.weight,
                bn.bias,
                bn.running_mean,
                bn.running_var,
                bn.training,
                bn.momentum,
                bn.eps,
                out=out.narrow(0, start, size),
                save_mean=mean,
                save_invstd=invstd,
            )
            stats += [mean, invstd]
            start += size
        ctx.sizes, ctx.bns = sizes, bns
        ctx.training = [bn.training for bn in bns]
        ctx.save_for_backward(x, *params, *stats)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        num = len(ctx.sizes)
        x, params, stats = (
            ctx.saved_tensors[0],
            ctx.saved_tensors[1 : 1 + 2 * num],
            ctx.saved_tensors[1 + 2 * num :],
        )
        needs_x = ctx.needs_input_grad[0]
        grad_x = torch.empty_like(x) if needs_x else None
        grad_params, start = [], 0
        for i, (size, bn) in enumerate(zip(ctx.sizes, ctx.bns)):
            mask = [needs_x, *ctx.needs_input_grad[3 + 2 * i : 5 + 2 * i]]
            rows = grad_x.narrow(0, start, size) if needs_x else None
            grad_rows, *grads = aten.native_batch_norm_backward(
                grad.narrow(0, start, size),
                x.narrow(0, start, size),
                params[2 * i],
                bn.running_mean,
                bn.running_var,
                stats[2 * i],
                stats[2 * i + 1],
                ctx.training[i],
                bn.eps,
                mask,
            )
            if needs_x:
                rows.copy_(grad_rows)
            grad_params += [g if m else None for g, m in zip(grads, mask[1:])]
            start += size
        return (grad_x, None, None, *grad_params)


def _stat_dtype(x: Tensor, bn: nn.BatchNorm2d) -> torch.dtype:
    """The dtype the kernel saves batch statistics in (it differs by device and mixed precision)."""
    weight = None if bn.weight is None else bn.weight.dtype
    return _probe_stat_dtype(x.device, x.dtype, weight, bn.running_mean.dtype)


@lru_cache(maxsize=None)
def _probe_stat_dtype(device, dtype, weight_dtype, stats_dtype) -> torch.dtype:
    x = torch.ones(2, 1, device=device, dtype=dtype)
    weight = None if weight_dtype is None else torch.ones(1, device=device, dtype=weight_dtype)
    running = [torch.ones(1, device=device, dtype=stats_dtype) for _ in range(2)]
    return aten.native_batch_norm(x, weight, weight, *running, True, 0.1, 1e-5)[1].dtype
