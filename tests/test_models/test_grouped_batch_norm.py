import copy
import warnings

import pytest
import torch
from mmengine.utils.dl_utils.parrots_wrapper import SyncBatchNorm
from torch import nn

from mmseg_cdcl import dataset_context
from mmseg_cdcl.models.layers import DSBN, DatasetRouting
from mmseg_cdcl.models.layers.grouped_batch_norm import (
    groupable,
    grouped_batch_norm,
    interleavable,
    interleaved_batch_norm,
)

# Runs of dataset indices as the sampler makes them, also out of dataset order and with a
# dataset absent (2 of 4).
GROUPS = [[1, 1, 0, 0, 0, 3], [0, 0, 1, 1]]


def _branches(num, channels, dtype=torch.float32, seed=0, **kwargs):
    gen = torch.Generator().manual_seed(seed)
    bns = nn.ModuleList(nn.BatchNorm2d(channels, **kwargs) for _ in range(num)).to(dtype)
    with torch.no_grad():
        for bn in bns:
            for p in bn.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
            bn.running_mean.normal_(generator=gen)
            bn.running_var.uniform_(0.5, 2, generator=gen)
    return bns


def _runs(dataset_idx):
    """(dataset, size) of each run of equal indices, as DSBN routes them."""
    routing = DatasetRouting.build(dataset_idx)
    return list(zip(routing.datasets, routing.split_sizes))


@pytest.mark.parametrize('dataset_idx', GROUPS, ids=['unordered', 'ordered'])
@pytest.mark.parametrize(
    'dtype,channels_last,training',
    [
        (torch.float32, False, True),
        (torch.float64, False, True),
        (torch.bfloat16, False, True),
        (torch.float32, True, True),
        (torch.float32, False, False),
    ],
    ids=['fp32', 'fp64', 'bf16', 'channels_last', 'eval'],
)
def test_equals_separate_batchnorm_forwards_to_the_bit(dataset_idx, dtype, channels_last, training):
    grouped = _branches(4, 5, dtype).train(training)
    separate = copy.deepcopy(grouped)
    x = torch.randn(len(dataset_idx), 5, 4, 6, dtype=dtype) * 3 + 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xg, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    upstream = torch.randn_like(x)
    runs = _runs(dataset_idx)

    out_g = grouped_batch_norm(xg, [n for _, n in runs], [grouped[d] for d, _ in runs])
    out_s = torch.cat(
        [separate[d](part) for (d, _), part in zip(runs, xs.split([n for _, n in runs]))]
    )
    (out_g * upstream).sum().backward()
    (out_s * upstream).sum().backward()

    assert out_g.dtype == dtype and out_g.shape == x.shape
    assert out_g.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert torch.equal(out_g, out_s) and torch.equal(xg.grad, xs.grad)
    for bg, bs in zip(grouped, separate):
        for key, value in bs.state_dict().items():  # running stats, num_batches_tracked
            assert torch.equal(bg.state_dict()[key], value), key
        for pg, ps in zip(bg.parameters(), bs.parameters()):
            assert (pg.grad is None) == (ps.grad is None)  # branch 2 took no sample
            assert pg.grad is None or torch.equal(pg.grad, ps.grad)
    assert [int(bn.num_batches_tracked) for bn in grouped] == (
        [int(d in dataset_idx and training) for d in range(4)]
    )


def _frozen_or_without_affine(num, channels):
    """Branches without affine parameters, then frozen ones, each with a copy."""
    for kwargs, frozen in ((dict(affine=False), False), ({}, True)):
        bns = _branches(num, channels, **kwargs)
        for p in bns.parameters():
            p.requires_grad_(not frozen)
        yield bns, copy.deepcopy(bns)


def test_frozen_branches_and_no_affine():
    for grouped, separate in _frozen_or_without_affine(2, 3):
        x = torch.randn(5, 3, 2, 2)
        xg, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
        grouped_batch_norm(xg, [2, 3], list(grouped)).sum().backward()
        torch.cat([separate[0](xs[:2]), separate[1](xs[2:])]).sum().backward()
        assert torch.equal(xg.grad, xs.grad)
        assert all(p.grad is None for p in grouped.parameters())


@pytest.mark.slow
def test_gradients_match_finite_differences():
    bns = _branches(2, 3, torch.float64)
    x = torch.randn(5, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    params = [p for bn in bns for p in bn.parameters()]
    assert torch.autograd.gradcheck(
        lambda x, *_: grouped_batch_norm(x, [3, 2], list(bns)), (x, *params)
    )


def test_groupable_only_for_the_batchnorm_it_reproduces():
    assert groupable([nn.BatchNorm2d(4), nn.BatchNorm2d(4)])
    assert not groupable([nn.BatchNorm2d(4), nn.BatchNorm2d(4, momentum=None)])
    assert not groupable([nn.BatchNorm2d(4, track_running_stats=False)])
    assert groupable([nn.SyncBatchNorm(4)])  # DSBN fuses them only when they do not sync
    assert groupable([SyncBatchNorm(4)])  # mmengine's subclass: what configs' SyncBN build


@pytest.mark.parametrize(
    'synchronising, path', [(False, '_GroupedBatchNormBackward'), (True, 'CatBackward0')]
)
def test_syncbn_branches_fuse_unless_they_synchronise(synchronising, path, monkeypatch):
    """A converted stock config's SyncBN branches: one BatchNorm call on one process; separate
    calls, each its all-reduce, in distributed training."""
    dsbn = DSBN(4, num_datasets=2, sync=True)
    separate = copy.deepcopy(dsbn)
    monkeypatch.setattr(DSBN, '_synchronising', lambda self: synchronising)
    x = torch.randn(4, 4, 3, 3, requires_grad=True)
    with dataset_context(dsbn, [0, 0, 1, 1]):
        out = dsbn(x)
    assert type(out.grad_fn).__name__ == path
    for d, rows in enumerate((slice(0, 2), slice(2, 4))):
        with dataset_context(separate, d):
            torch.testing.assert_close(out[rows], separate(x[rows]), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    'kwargs,path',
    [({}, '_GroupedBatchNormBackward'), (dict(momentum=None), 'CatBackward0')],
    ids=['grouped', 'cumulative-average-fallback'],
)
def test_dsbn_takes_the_grouped_path_for_contiguous_groups(kwargs, path):
    dsbn = DSBN(4, num_datasets=2, **kwargs)
    separate = copy.deepcopy(dsbn)
    x = torch.randn(6, 4, 3, 3, requires_grad=True)
    with dataset_context(dsbn, [0, 0, 0, 1, 1, 1]):
        out = dsbn(x)
    assert type(out.grad_fn).__name__ == path
    torch.testing.assert_close(
        out, torch.cat([separate.bns[0](x[:3]), separate.bns[1](x[3:])]), rtol=0, atol=0
    )


# Datasets alternating as the sampler makes them, also out of dataset order and with a dataset
# absent (1 of 3).
CYCLES = [([0, 1] * 3, 2), ([2, 0] * 2, 3), ([0, 1, 2] * 2, 3)]


@pytest.mark.parametrize('dataset_idx,num', CYCLES, ids=['two', 'unordered', 'three'])
@pytest.mark.parametrize(
    'dtype,training',
    [(torch.float32, True), (torch.float64, True), (torch.bfloat16, True), (torch.float32, False)],
    ids=['fp32', 'fp64', 'bf16', 'eval'],
)
def test_interleaved_equals_separate_batchnorms_to_the_bit(dataset_idx, num, dtype, training):
    interleaved = _branches(
        num, 5, torch.float64 if dtype == torch.float64 else torch.float32, seed=1
    ).train(training)
    separate = copy.deepcopy(interleaved)
    # bf16 activations with float32 BatchNorms, as under autocast.
    x = (torch.randn(len(dataset_idx), 5, 4, 6) * 3 + 1).to(dtype)
    xi, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    upstream = torch.randn_like(x)
    routing = DatasetRouting.build(dataset_idx)
    assert routing.interleave == len(routing.groups)

    out_i = interleaved_batch_norm(xi, [interleaved[d] for d in routing.datasets])
    (out_i * upstream).sum().backward()
    out_s = torch.empty_like(x)
    for d, rows in routing.groups:  # each dataset's samples, dense, through its BatchNorm
        part = xs[rows].contiguous()
        out_s[rows] = separate[d](part)
    (out_s * upstream).sum().backward()

    assert out_i.dtype == dtype and out_i.shape == x.shape
    assert torch.equal(out_i, out_s) and torch.equal(xi.grad, xs.grad)
    for d, (bi, bs) in enumerate(zip(interleaved, separate)):
        for key, value in bs.state_dict().items():  # running stats, num_batches_tracked
            assert torch.equal(bi.state_dict()[key], value), key
        for pi, ps in zip(bi.parameters(), bs.parameters()):
            assert (pi.grad is None) == (ps.grad is None) == (d not in dataset_idx)
            assert pi.grad is None or torch.equal(pi.grad, ps.grad)
    assert [int(bn.num_batches_tracked) for bn in interleaved] == (
        [int(d in dataset_idx and training) for d in range(num)]
    )


def test_interleaved_frozen_branches_no_affine_and_gradients():
    for interleaved, separate in _frozen_or_without_affine(2, 3):
        x = torch.randn(4, 3, 2, 2)
        xi, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
        upstream = torch.randn_like(x)
        (interleaved_batch_norm(xi, list(interleaved)) * upstream).sum().backward()
        out_s = torch.empty_like(x)
        for d in range(2):
            out_s[d::2] = separate[d](xs[d::2].contiguous())
        (out_s * upstream).sum().backward()
        assert torch.equal(xi.grad, xs.grad)
        assert all(p.grad is None for p in interleaved.parameters())
    bns = _branches(2, 3, torch.float64)
    x = torch.randn(6, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    params = [p for bn in bns for p in bn.parameters()]
    assert torch.autograd.gradcheck(
        lambda x, *_: interleaved_batch_norm(x, list(bns)), (x, *params)
    )


def test_interleavable_needs_alike_branches():
    assert interleavable([nn.BatchNorm2d(3), nn.BatchNorm2d(3)])
    assert not interleavable([nn.BatchNorm2d(3), nn.BatchNorm2d(3, eps=1e-3)])
    assert not interleavable([nn.BatchNorm2d(3), nn.BatchNorm2d(3).eval()])
    assert not interleavable([nn.BatchNorm2d(3, momentum=None)] * 2)
    assert not interleavable([nn.BatchNorm2d(3, track_running_stats=False)] * 2)


@pytest.mark.parametrize(
    'channels_last,path',
    [(False, 'UnsafeViewBackward0'), (True, 'CloneBackward0')],
    ids=['nchw', 'channels-last'],
)
def test_dsbn_takes_one_batchnorm_for_alternating_datasets(channels_last, path):
    dsbn = _perturbed_dsbn()
    separate = copy.deepcopy(dsbn)
    x = torch.randn(6, 4, 3, 3)
    # The same bits as the contiguous layout of the same samples (NCHW).
    order = [0, 2, 4, 1, 3, 5]
    with dataset_context(separate, [0, 0, 0, 1, 1, 1]):
        expected = separate(x[order])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with dataset_context(dsbn, [0, 1] * 3), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = dsbn(x.requires_grad_())
    assert type(out.grad_fn).__name__ == path
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert torch.equal(out[order], expected)
    # channels_last copies to NCHW and back, and says how to avoid it.
    assert [
        str(w.message).endswith('set MultiDatasetSampler(interleave=False)') for w in caught
    ] == [True] * channels_last
    # A DAB's in-place ReLU follows: on a view, autograd would copy the activation for it.
    assert not out._is_view() and type(out.relu_().grad_fn).__name__ == 'ReluBackward0'


def _perturbed_dsbn():
    dsbn = DSBN(4, num_datasets=2)
    dsbn.bns = _branches(2, 4, seed=2)
    return dsbn
