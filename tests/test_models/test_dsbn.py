import copy
import re

import numpy as np
import pytest
import torch
from mmcv.cnn import build_norm_layer
from torch import nn

from mmseg_cdcl import dataset_context
from mmseg_cdcl.models.layers import DSBN


def _perturbed(module, seed=0):
    """Distinct affine parameters per branch, so a wrong branch shows up in the numbers."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return module


def test_build_norm_layer_names_it_bn():
    name, layer = build_norm_layer(
        dict(type='DSBN', num_datasets=3, requires_grad=False), 8, postfix=1
    )
    assert name == 'bn1'
    assert isinstance(layer, DSBN) and len(layer.bns) == 3
    assert all(not p.requires_grad for p in layer.parameters())


def test_single_dataset_equals_batchnorm2d():
    torch.manual_seed(0)
    dsbn, bn = DSBN(6, num_datasets=1), nn.BatchNorm2d(6)
    (
        _perturbed(dsbn),
        bn.load_state_dict({k.replace('bns.0.', ''): v for k, v in dsbn.state_dict().items()}),
    )
    x = torch.randn(4, 6, 5, 5) * 3 + 1
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    for _ in range(3):  # several steps: running stats accumulate the same way
        out1, out2 = dsbn(x1), bn(x2)  # no dataset_context needed with one dataset
        torch.testing.assert_close(out1, out2, atol=1e-6, rtol=0)
    out1.pow(2).sum().backward()
    out2.pow(2).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-6, rtol=0)
    torch.testing.assert_close(dsbn.bns[0].weight.grad, bn.weight.grad, atol=1e-6, rtol=0)
    torch.testing.assert_close(dsbn.bns[0].running_mean, bn.running_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(dsbn.bns[0].running_var, bn.running_var, atol=1e-6, rtol=0)
    assert int(dsbn.bns[0].num_batches_tracked) == int(bn.num_batches_tracked) == 3
    dsbn.eval(), bn.eval()
    torch.testing.assert_close(dsbn(x), bn(x), atol=1e-6, rtol=0)


DEVICES = [
    pytest.param('cpu', id='cpu'),
    pytest.param(
        'cuda',
        id='cuda',
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device'),
    ),
]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize(
    'dataset_idx',
    [[0, 0, 1, 1, 1, 2], [0, 1, 2, 0, 1, 2], [1, 0, 2, 1, 0, 1]],
    ids=['contiguous', 'alternating', 'unordered'],
)
def test_mixed_batch_equals_separate_forwards(dataset_idx, device):
    torch.manual_seed(0)
    mixed = _perturbed(DSBN(4, num_datasets=3)).to(device)
    separate = copy.deepcopy(mixed)
    # Each dataset's samples with their own scale and shift: the statistics differ per dataset.
    idx = torch.tensor(dataset_idx)
    x = torch.randn(6, 4, 3, 3) * (idx.view(-1, 1, 1, 1) + 1) + idx.view(-1, 1, 1, 1) * 5
    x = x.to(device)
    # cuDNN may sum in another order for the mixed batch than for each dataset's samples.
    tol = dict(atol=1e-6 if device == 'cpu' else 1e-5, rtol=0)
    grad_tol = dict(atol=10 * tol['atol'], rtol=0)
    xm, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    upstream = torch.randn_like(x)

    with dataset_context(mixed, dataset_idx):
        out_mixed = mixed(xm)
    out_sep = torch.empty_like(x)
    for d in range(3):
        rows = (idx == d).nonzero().flatten()
        with dataset_context(separate, d):
            out_sep[rows] = separate(xs[rows])
    torch.testing.assert_close(out_mixed, out_sep, **tol)

    (out_mixed * upstream).sum().backward()
    (out_sep * upstream).sum().backward()
    torch.testing.assert_close(xm.grad, xs.grad, **grad_tol)
    for d in range(3):
        bm, bs = mixed.bns[d], separate.bns[d]
        torch.testing.assert_close(bm.weight.grad, bs.weight.grad, **grad_tol)
        torch.testing.assert_close(bm.bias.grad, bs.bias.grad, **grad_tol)
        torch.testing.assert_close(bm.running_mean, bs.running_mean, **tol)
        torch.testing.assert_close(bm.running_var, bs.running_var, **tol)
        assert int(bm.num_batches_tracked) == int(bs.num_batches_tracked) == 1
    # Each branch normalises with its own dataset's statistics: zero mean, unit variance.
    with torch.no_grad(), dataset_context(mixed, dataset_idx):
        for bn in mixed.bns:
            bn.weight.fill_(1), bn.bias.zero_()
        out = mixed(x)
    for d in range(3):
        per_channel = out[idx == d].transpose(0, 1).flatten(1)
        torch.testing.assert_close(per_channel.mean(1).cpu(), torch.zeros(4), atol=1e-5, rtol=0)


def test_eval_uses_each_branch_running_stats():
    dsbn = DSBN(2, num_datasets=2).eval()
    dsbn.bns[1].running_mean.fill_(10.0)
    x = torch.full((2, 2, 1, 1), 10.0)
    with dataset_context(dsbn, [0, 1]):
        out = dsbn(x)
    expected = torch.tensor([10 / (1 + 1e-5) ** 0.5, 0.0])
    torch.testing.assert_close(out[:, 0, 0, 0], expected)


def test_outside_context_is_an_error():
    dsbn = DSBN(8, num_datasets=2)
    with pytest.raises(
        RuntimeError,
        match=r'DSBN\(8, num_datasets=2\) was called outside '
        r'mmseg_cdcl.dataset_context',
    ):
        dsbn(torch.randn(2, 8, 2, 2))


def test_out_of_range_index_names_module():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), DSBN(4, num_datasets=2))
    with pytest.raises(
        IndexError,
        match=r"dataset index 2 is out of range for DSBN '1' with "
        r'num_datasets=2',
    ):
        with dataset_context(model, [0, 2]):
            pass
    with pytest.raises(IndexError, match='dataset index -1'):
        with dataset_context(model, -1):
            pass


def test_batch_size_must_match_indices():
    dsbn = DSBN(4, num_datasets=2)
    with dataset_context(dsbn, [0, 1, 1]), pytest.raises(
        ValueError, match='got a batch of 2 samples but dataset_context was given 3'
    ):
        dsbn(torch.randn(2, 4, 2, 2))


def test_context_is_per_forward_and_nests():
    dsbn = DSBN(4, num_datasets=2)
    with dataset_context(dsbn, 1) as outer:
        with dataset_context(dsbn, [0, 1]) as inner:
            assert dsbn._routing is inner
        assert dsbn._routing is outer and outer.single == 1
    assert dsbn._routing is None


def test_plain_bn_checkpoint_fills_every_branch():
    bn = _perturbed(nn.BatchNorm2d(5))
    bn.running_mean.uniform_(), bn.running_var.uniform_(1, 2), bn.num_batches_tracked.fill_(7)
    source = nn.Sequential(nn.Conv2d(3, 5, 1), bn)
    target = nn.Sequential(nn.Conv2d(3, 5, 1), DSBN(5, num_datasets=3))
    target.load_state_dict(source.state_dict())  # strict: no missing or unexpected key
    for branch in target[1].bns:
        for key, value in bn.state_dict().items():
            torch.testing.assert_close(branch.state_dict()[key], value, rtol=0, atol=0)


def test_dsbn_checkpoint_round_trip_and_mismatch():
    source = _perturbed(DSBN(3, num_datasets=2))
    target = DSBN(3, num_datasets=2)
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target.bns[1].weight, source.bns[1].weight, rtol=0, atol=0)
    with pytest.raises(
        ValueError,
        match=r"DSBN '1': the checkpoint has 2 dataset branches but "
        r'the model has num_datasets=3',
    ):
        nn.Sequential(nn.Identity(), DSBN(3, num_datasets=3)).load_state_dict(
            {f'1.{k}': v for k, v in source.state_dict().items()}
        )


def test_invalid_num_datasets():
    with pytest.raises(ValueError, match='DSBN num_datasets must be a positive int, got 0'):
        DSBN(4, num_datasets=0)


def test_one_value_per_channel_of_a_dataset_is_refused_not_nan():
    """[a, a, b] at a 1x1 map (PSP's scale-1 pooling): BatchNorm2d's own check, per dataset."""
    dsbn = DSBN(4, num_datasets=2)
    before = copy.deepcopy(dsbn.state_dict())
    with dataset_context(dsbn, [0, 0, 1]), pytest.raises(
        ValueError,
        match=r'DSBN\(4, num_datasets=2\): dataset 1 has 1 value per channel in '
        r'this training batch \(input \(3, 4, 1, 1\)\)',
    ):
        dsbn(torch.randn(3, 4, 1, 1))
    for key, value in dsbn.state_dict().items():  # nothing was written, no NaN
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    with dataset_context(dsbn, [0, 1, 0, 1]):  # 2 values each: fine
        assert torch.isfinite(dsbn(torch.randn(4, 4, 1, 1))).all()
    assert all(torch.isfinite(bn.running_var).all() for bn in dsbn.bns)
    dsbn.eval()
    with dataset_context(dsbn, [0, 0, 1]):  # running statistics need no batch
        assert dsbn(torch.randn(3, 4, 1, 1)).shape == (3, 4, 1, 1)


@pytest.mark.parametrize(
    'dataset_idx',
    [[0, 0, 1, 1], [0, 1, 0, 1], [1, 0, 0, 1]],
    ids=['contiguous', 'alternating', 'unordered'],
)
def test_non_contiguous_input_equals_separate_forwards(dataset_idx):
    torch.manual_seed(0)
    mixed = _perturbed(DSBN(3, num_datasets=2))
    separate = copy.deepcopy(mixed)
    idx = torch.tensor(dataset_idx)
    base = torch.randn(4, 3, 6, 5) * (idx.view(-1, 1, 1, 1) + 1) + idx.view(-1, 1, 1, 1) * 4
    x = base.transpose(2, 3)  # a transposed view: neither NCHW nor channels_last contiguous
    assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    with dataset_context(mixed, dataset_idx):
        out = mixed(x)
    for d in range(2):
        rows = (idx == d).nonzero().flatten()
        with dataset_context(separate, d):
            expected = separate(x[rows].contiguous())
        torch.testing.assert_close(out[rows], expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(
            mixed.bns[d].running_mean, separate.bns[d].running_mean, atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            mixed.bns[d].running_var, separate.bns[d].running_var, atol=1e-6, rtol=0
        )


@pytest.mark.parametrize(
    'dataset_idx',
    [1, [0, 0, 1, 1], [0, 1, 0, 1], [1, 0, 0, 1]],
    ids=['single', 'contiguous', 'alternating', 'unordered'],
)
@pytest.mark.parametrize('shape', [(4, 3), (4, 3, 5), (4, 3, 2, 2, 2)], ids=['2d', '3d', '5d'])
def test_every_path_refuses_what_batchnorm2d_refuses(dataset_idx, shape):
    dsbn = DSBN(3, num_datasets=2)
    expected = f'expected 4D input (got {len(shape)}D input)'
    with dataset_context(dsbn, dataset_idx), pytest.raises(ValueError, match=re.escape(expected)):
        dsbn(torch.randn(*shape))


def test_dataset_context_takes_numpy_and_tensor_indices():
    dsbn = DSBN(2, num_datasets=3)
    for index in (np.int64(2), torch.tensor(2), np.array(2)):
        with dataset_context(dsbn, index) as routing:
            assert routing.single == 2 and type(routing.single) is int
    for indices in (np.array([0, 2, 2]), torch.tensor([0, 2, 2]), [np.int64(0), 2, 2]):
        with dataset_context(dsbn, indices) as routing:
            assert routing.datasets == (0, 2) and routing.split_sizes == (1, 2)
    for bad in ([0.5, 1.0], np.array([[0, 1]]), [], True):
        with pytest.raises(
            ValueError,
            match='dataset_idx must be an int or a non-empty 1-D '
            'sequence with one integer dataset index per sample',
        ):
            with dataset_context(dsbn, bad):
                pass


@pytest.mark.parametrize('sync', [False, True], ids=['bn', 'syncbn'])
def test_absent_datasets_statistics_never_change(sync):
    """Intervals > 1: iterations without dataset 2. Its branch is never called, so neither its
    running statistics nor its batch count move (SyncBatchNorm on empty batches shrank them)."""
    dsbn = DSBN(3, num_datasets=3, sync=sync)
    calls = [0, 0, 0]
    for d, bn in enumerate(dsbn.bns):
        bn.register_forward_hook(lambda *_, d=d: calls.__setitem__(d, calls[d] + 1))
    absent = copy.deepcopy(dsbn.bns[2].state_dict())
    for dataset_idx in (0, [0, 0, 1, 1], [0, 1, 0, 1], [1, 0, 0, 1], [1, 1, 0, 0]):
        with dataset_context(dsbn, dataset_idx):
            dsbn(torch.randn(4 if isinstance(dataset_idx, list) else 2, 3, 2, 2))
    assert calls[2] == 0
    for key, value in dsbn.bns[2].state_dict().items():
        torch.testing.assert_close(value, absent[key], rtol=0, atol=0)
    assert int(dsbn.bns[0].num_batches_tracked) == 5 and int(dsbn.bns[1].num_batches_tracked) == 4


def test_convert_dsbn_replaces_every_batchnorm_with_copies_of_it():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1),
        _perturbed(nn.BatchNorm2d(4, momentum=0.3)),
        nn.Sequential(nn.SyncBatchNorm(4, eps=1e-3)),
        nn.Flatten(2),
        nn.BatchNorm1d(4),
        nn.LayerNorm(5),
    )
    model[4].weight.requires_grad_(False)
    model[1].running_mean.fill_(2.0)
    reference = copy.deepcopy(model)
    assert DSBN.convert_dsbn(model, 2) is model
    assert [type(m).__name__ for m in model] == [
        'Conv2d',
        'DSBN',
        'Sequential',
        'Flatten',
        'DSBN',
        'LayerNorm',
    ]
    assert type(model[2][0].bns[1]) is nn.SyncBatchNorm and model[2][0].bns[1].eps == 1e-3
    assert type(model[4].bns[0]) is nn.BatchNorm1d
    assert not model[4].bns[1].weight.requires_grad and model[4].bns[1].bias.requires_grad
    for d in range(2):
        assert model[1].bns[d].momentum == 0.3
        torch.testing.assert_close(model[1].bns[d].weight, reference[1].weight, rtol=0, atol=0)
        torch.testing.assert_close(model[1].bns[d].running_mean, torch.full((4,), 2.0))
    assert model[1].bns[0].weight is not model[1].bns[1].weight  # copies, not shared
    # A checkpoint of the stock model loads into every branch; each dataset then computes
    # what the stock model computes.
    model.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 5, 1)
    model.eval(), reference.eval()
    for d in range(2):
        with dataset_context(model, d):
            torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    assert DSBN.convert_dsbn(nn.BatchNorm2d(3), 2).num_datasets == 2


def test_gradient_checkpointing_recomputes_with_the_forwards_routing():
    """MMSeg's with_cp recomputes the forward in the backward, after dataset_context exited."""
    torch.manual_seed(0)
    dsbn = _perturbed(DSBN(3, num_datasets=2))
    plain = copy.deepcopy(dsbn)
    x = torch.randn(4, 3, 2, 2) * 3
    xc, xp = x.clone().requires_grad_(), x.clone().requires_grad_()
    dsbn.forget_routing()
    with dataset_context(dsbn, [0, 1, 0, 1]):
        out = torch.utils.checkpoint.checkpoint(dsbn, xc, use_reentrant=True)
    out.pow(2).sum().backward()
    with dataset_context(plain, [0, 1, 0, 1]):
        plain(xp).pow(2).sum().backward()
    torch.testing.assert_close(xc.grad, xp.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dsbn.bns[1].weight.grad, plain.bns[1].weight.grad)

    # Ran for two routings in the step: which one a recomputation needs is unknown.
    dsbn.forget_routing()
    with dataset_context(dsbn, 0):
        first = torch.utils.checkpoint.checkpoint(dsbn, xc, use_reentrant=True)
    with dataset_context(dsbn, 1):
        dsbn(x)
    with pytest.raises(
        RuntimeError,
        match=r'DSBN\(3, num_datasets=2\) is recomputed in the '
        r'backward \(gradient checkpointing\) but ran for '
        r'several dataset routings in this step',
    ):
        first.sum().backward()
