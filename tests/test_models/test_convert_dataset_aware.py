"""A built stock MMSeg model converted to CDCL is the CDCL segmentor's own network."""

import copy

import pytest
import torch
from mmseg.registry import MODELS
from torch import nn

from conftest import small_cdcl_cfg
from mmseg_cdcl import dataset_context
from mmseg_cdcl.models.layers import DSBN, DatasetBranches
from mmseg_cdcl.models.utils.convert_dataset_aware import (
    build_dataset_aware_head,
    check_convertible,
    convert_dataset_aware,
    runs_on_mixed_batches,
)

NUM_CLASSES = [5, 3]


def _stock_cfg():
    """small_cdcl_cfg's network as a stock MMSeg config (one dataset of 5 classes)."""
    cfg = small_cdcl_cfg()
    cfg.pop('dataset_names')
    cfg['type'] = 'EncoderDecoder'
    cfg['backbone'] = dict(cfg['backbone'], type='ResNetV1c')
    cfg['backbone'].pop('num_datasets')
    cfg['decode_head'] = dict(cfg['decode_head'], type='PSPHead', num_classes=5)
    cfg['auxiliary_head'] = dict(cfg['auxiliary_head'], type='FCNHead', num_classes=5)
    return cfg


def test_converted_stock_model_is_the_cdcl_segmentors_network():
    cfg = _stock_cfg()
    stock = MODELS.build(copy.deepcopy(cfg))
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in stock.modules())
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    assert convert_dataset_aware(stock, kwargs, NUM_CLASSES) is stock
    assert [
        n for n, m in stock.named_modules() if isinstance(m, nn.BatchNorm2d) and '.bns.' not in n
    ] == []  # all within DSBNs
    assert sum(isinstance(m, DSBN) for m in stock.modules()) == bns
    assert [b.out_channels for b in stock.decode_head.conv_seg] == NUM_CLASSES
    assert [b.out_channels for b in stock.auxiliary_head.conv_seg] == NUM_CLASSES

    cdcl = MODELS.build(
        dict(cfg, type='CDCLEncoderDecoder', dataset_names=['a', 'b'], num_classes=NUM_CLASSES)
    )
    assert list(stock.state_dict()) == list(cdcl.state_dict())
    stock.load_state_dict(cdcl.state_dict())
    stock.eval(), cdcl.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for d, classes in enumerate(NUM_CLASSES):
        with torch.no_grad(), dataset_context(stock, d):
            logits = stock._forward(x)
        with torch.no_grad(), cdcl.dataset(d):
            expected = cdcl.decode_head(cdcl.extract_feat(x))
        assert logits.shape[1] == classes
        torch.testing.assert_close(logits, expected, rtol=0, atol=0)


def test_refusals_need_only_the_config():
    # an unregistered type: refused by name before anything is built
    heads = dict(decode_head=dict(type='MaskFormerHead', num_classes=5))
    with pytest.raises(
        ValueError,
        match=r'decode_head \(MaskFormerHead\) cannot be trained by '
        'CDCL: a query-based head',
    ):
        check_convertible(heads, ['a', 'b'], NUM_CLASSES)
    with pytest.raises(
        ValueError,
        match=r'num_classes=\[5\]: expected one class count per '
        r"dataset \['a', 'b'\]",
    ):
        check_convertible(heads, ['a', 'b'], [5])


def test_heads_of_mmsegs_usual_form_run_on_mixed_batches():
    cfg = _stock_cfg()
    fcn = build_dataset_aware_head(cfg['auxiliary_head'], NUM_CLASSES)
    assert runs_on_mixed_batches(fcn)
    fcn.extra = DatasetBranches(nn.Conv2d(1, 1, 1) for _ in NUM_CLASSES)
    assert not runs_on_mixed_batches(fcn)  # a per-dataset module besides its classifier
    segformer = MODELS.build(
        dict(type='SegformerHead', in_channels=[8, 8], in_index=[0, 1], channels=8, num_classes=3)
    )
    assert not runs_on_mixed_batches(segformer)  # its forward is not cls_seg(_forward_feature)
