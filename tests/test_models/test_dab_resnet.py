import pytest
import torch
from mmengine.runner import save_checkpoint
from mmseg.registry import MODELS
from torch import nn

from mmseg_cdcl import dataset_context
from mmseg_cdcl.models.layers import DSBN

ARCH = dict(depth=18, dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True)


def _stock_and_dab(**kwargs):
    torch.manual_seed(0)
    stock = MODELS.build(dict(type='ResNetV1c', **ARCH, **kwargs))
    with torch.no_grad():  # non-trivial BN state, so loading it is visible
        for m in stock.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 2)
    dab = MODELS.build(dict(type='DABResNetV1c', num_datasets=2, **ARCH, **kwargs))
    return stock, dab


def test_every_norm_is_dsbn_with_mmseg_names():
    stock, dab = _stock_and_dab()
    stock_bns = [n for n, m in stock.named_modules() if isinstance(m, nn.BatchNorm2d)]
    dab_norms = [n for n, m in dab.named_modules() if isinstance(m, DSBN)]
    assert len(stock_bns) == len(dab_norms) == 22  # R18: stem 3, blocks 16, downsample 3
    assert dab_norms == stock_bns  # stem, blocks and downsample keep MMSeg's names
    stock_keys = set(stock.state_dict())
    dab_keys = {k.replace('.bns.0.', '.') for k in dab.state_dict() if '.bns.1.' not in k}
    assert dab_keys == stock_keys


def test_plain_checkpoint_through_init_cfg_and_same_output(tmp_path):
    stock, _ = _stock_and_dab()
    path = str(tmp_path / 'resnet18_v1c.pth')
    save_checkpoint(stock.state_dict(), path)
    dab = MODELS.build(
        dict(
            type='DABResNetV1c',
            num_datasets=2,
            **ARCH,
            init_cfg=dict(type='Pretrained', checkpoint=path),
        )
    )
    dab.init_weights()
    x = torch.randn(2, 3, 64, 64)
    stock.eval(), dab.eval()
    expected = stock(x)
    for d in (0, 1):
        with dataset_context(dab, d):
            for out, ref in zip(dab(x), expected):
                torch.testing.assert_close(out, ref, rtol=0, atol=0)
    stock.train(), dab.train()  # batch statistics: the same too
    with dataset_context(dab, [1, 1]):
        torch.testing.assert_close(dab(x)[-1], stock(x)[-1], rtol=0, atol=1e-6)


def test_norm_eval_and_frozen_stages_as_mmseg():
    _, dab = _stock_and_dab(norm_eval=True, frozen_stages=1)
    dab.train()
    branches = [m for m in dab.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(branches) == 44 and not any(m.training for m in branches)
    frozen = [p for n, p in dab.named_parameters() if n.startswith(('stem', 'layer1'))]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for n, p in dab.named_parameters() if n.startswith('layer2'))


def test_dilations_as_mmseg():
    stock, dab = _stock_and_dab()
    stock_convs = [
        (n, m.dilation, m.stride) for n, m in stock.named_modules() if isinstance(m, nn.Conv2d)
    ]
    dab_convs = [
        (n, m.dilation, m.stride) for n, m in dab.named_modules() if isinstance(m, nn.Conv2d)
    ]
    assert dab_convs == stock_convs
    assert ('layer4.0.conv1', (2, 2), (1, 1)) in dab_convs  # contract_dilation: 4 -> 2


def test_norm_cfg_num_datasets_must_agree():
    with pytest.raises(
        ValueError,
        match='DABResNetV1c: norm_cfg has num_datasets=3 but the module is built for 2 datasets',
    ):
        MODELS.build(
            dict(
                type='DABResNetV1c',
                num_datasets=2,
                depth=18,
                norm_cfg=dict(type='DSBN', num_datasets=3),
            )
        )
