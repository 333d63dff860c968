"""Every MMSeg decode head becomes dataset-aware by one mechanism, or is refused by name."""

import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.registry import MODELS
from torch import nn

from conftest import seg_samples, thin_model
from mmseg_cdcl.models.decode_heads import head_dataset
from mmseg_cdcl.models.layers import DSBN, DatasetBranches, DatasetStatistics
from mmseg_cdcl.models.utils.convert_dataset_aware import build_dataset_aware_head
from mmseg_cdcl.utils import load_config

AUX_AND_DECODE = ['auxiliary_head.conv_seg', 'decode_head.conv_seg']
# The heads of MMSeg 1.2.2 beyond tests/test_tools/test_convert_config.py's model families, each
# in its smallest model-zoo config, and the classifiers the conversion finds in them.
HEADS = {
    'ANNHead': ('_base_/models/ann_r50-d8.py', AUX_AND_DECODE),
    'APCHead': ('_base_/models/apcnet_r50-d8.py', AUX_AND_DECODE),
    'CCHead': ('_base_/models/ccnet_r50-d8.py', AUX_AND_DECODE),
    'DMHead': ('_base_/models/dmnet_r50-d8.py', AUX_AND_DECODE),
    'DNLHead': ('_base_/models/dnl_r50-d8.py', AUX_AND_DECODE),
    'DPTHead': ('_base_/models/dpt_vit-b16.py', ['decode_head.conv_seg']),
    'EMAHead': ('_base_/models/emanet_r50-d8.py', AUX_AND_DECODE),
    'GCHead': ('_base_/models/gcnet_r50-d8.py', AUX_AND_DECODE),
    'ISAHead': ('_base_/models/isanet_r50-d8.py', AUX_AND_DECODE),
    'LightHamHead': (
        'segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py',
        ['decode_head.conv_seg'],
    ),
    'NLHead': ('_base_/models/nonlocal_r50-d8.py', AUX_AND_DECODE),
    'PSAHead': ('_base_/models/psanet_r50-d8.py', AUX_AND_DECODE),
    # PointRend: its point head's convs read the coarse prediction, so they are per dataset.
    'PointHead': (
        '_base_/models/pointrend_r50.py',
        [
            'decode_head.0.conv_seg',
            'decode_head.1.fc_seg',
            'decode_head.1.fcs.0.conv',
            'decode_head.1.fcs.1.conv',
            'decode_head.1.fcs.2.conv',
        ],
    ),
    'SETRUPHead': (
        '_base_/models/setr_naive.py',
        [
            'auxiliary_head.0.conv_seg',
            'auxiliary_head.1.conv_seg',
            'auxiliary_head.2.conv_seg',
            'decode_head.conv_seg',
        ],
    ),
    'SETRMLAHead': (
        '_base_/models/setr_mla.py',
        [f'auxiliary_head.{i}.conv_seg' for i in range(4)] + ['decode_head.conv_seg'],
    ),
    'LRASPPHead': ('_base_/models/lraspp_m-v3-d8.py', ['decode_head.conv_seg']),
    'ICNet (ICNeck, FCN heads)': (
        '_base_/models/icnet_r50-d8.py',
        ['auxiliary_head.0.conv_seg', 'auxiliary_head.1.conv_seg', 'decode_head.conv_seg'],
    ),
}
SIZE = dict(LRASPPHead=416)  # its 49x49 pooling needs a 392 px input or more
# One image of each dataset at that size (no BatchNorm after its pooling): the test's costliest.
ORDER = dict(LRASPPHead=[0, 1])
# Two heads (1.2 s each in pytest --durations at test size on an idle 2-core machine) stand for
# the mechanism in the fast tier; every head runs in the slow tier (make test).
FAST_HEADS = {'ANNHead', 'DNLHead'}


def _model_cfg(path, num_classes=(19, 11)):
    cfg = load_config(f'mmseg::{path}').model
    cfg.update(type='CDCLEncoderDecoder', dataset_names=['a', 'b'], num_classes=list(num_classes))
    cfg.pretrained = None
    if 'init_cfg' in cfg.backbone:
        cfg.backbone.init_cfg = None  # no downloads
    return cfg


@pytest.mark.parametrize(
    'head', [h if h in FAST_HEADS else pytest.param(h, marks=pytest.mark.slow) for h in HEADS]
)
def test_every_cpu_head_converts_and_trains_per_dataset(head):
    path, classifiers = HEADS[head]
    size = SIZE.get(head, 64)
    cfg = thin_model(_model_cfg(path))  # test size
    cfg.data_preprocessor.size = (size, size)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    found = sorted(
        n
        for n, m in model.named_modules()
        if isinstance(m, DatasetBranches) and not isinstance(m, DatasetStatistics)
    )
    assert found == classifiers
    statistics = sorted(n for n, m in model.named_modules() if isinstance(m, DatasetStatistics))
    assert statistics == (['decode_head.ema_module'] if head == 'EMAHead' else [])
    assert any(isinstance(m, DSBN) for m in model.modules())
    order = ORDER.get(head, [0, 1, 0, 1])
    samples = seg_samples(order, [19, 11], size=(size, size))
    losses = model.loss(torch.randn(len(order), 3, size, size), samples)
    assert {k.split('.')[0] for k in losses} == {'a', 'b'}
    model.parse_losses(losses)[0].backward()
    model.eval()
    with torch.no_grad():
        results = model.predict(torch.randn(2, 3, size, size), samples[:2])
    assert [r.seg_logits.data.shape[0] for r in results] == [19, 11]


@pytest.mark.parametrize(
    'path, message',
    [
        (
            'knet/knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py',
            r'decode_head \(IterativeDecodeHead\) cannot be trained by CDCL: K-Net: its kernels '
            r'are '
            r"read as tensors from the kernel generator's classifier",
        ),
        (
            'maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py',
            r'decode_head \(MaskFormerHead\) cannot be trained by CDCL: a query-based head',
        ),
        (
            'mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
            r'decode_head \(Mask2FormerHead\) cannot be trained by CDCL: a query-based head',
        ),
        (
            'san/san-vit-b16_coco-stuff164k-640x640.py',
            r'decode_head \(SideAdapterCLIPHead\) cannot be trained by CDCL: open-vocabulary',
        ),
        (
            '_base_/models/segmenter_vit-b16_mask.py',
            r"decode_head \(SegmenterMaskTransformerHead\): its own parameters \['cls_emb'\] "
            r'depend '
            r'on num_classes; only submodules \(classifiers\) can be made per dataset',
        ),
    ],
)
def test_heads_that_cannot_be_made_per_dataset_are_refused_by_name(path, message):
    cfg = load_config(f'mmseg::{path}').model
    cfg.update(type='CDCLEncoderDecoder', dataset_names=['a', 'b'], num_classes=[19, 11])
    with pytest.raises(ValueError, match=message):
        MODELS.build(cfg)
    # Before anything is built: a backbone that cannot be built is never reached.
    cfg.backbone = dict(type='BackboneThatIsNeverBuilt')
    with pytest.raises(ValueError, match=message):
        MODELS.build(cfg)
    cfg = _model_cfg('fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py')
    cfg.backbone = dict(type='BackboneThatIsNeverBuilt')
    with pytest.raises(KeyError, match='BackboneThatIsNeverBuilt is not in the'):
        MODELS.build(cfg)  # a convertible model gets as far as its backbone


def test_a_model_without_batchnorm_gets_per_dataset_classifiers_and_a_warning():
    gn = dict(type='GN', num_groups=8, requires_grad=True)
    cfg = _model_cfg('fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py')
    for part in (cfg.backbone, cfg.decode_head, cfg.auxiliary_head):
        part.norm_cfg = gn
    with pytest.warns(
        UserWarning,
        match='CDCL: the model has no BatchNorm, so nothing is '
        'dataset-specific but the classifiers',
    ):
        model = MODELS.build(cfg)
    assert not any(isinstance(m, (DSBN, nn.BatchNorm2d)) for m in model.modules())
    assert [c.out_channels for c in model.decode_head.conv_seg] == [19, 11]


def test_per_dataset_classifiers_ignore_index_and_class_weights():
    """DDRNet's losses are weighted for Cityscapes' 19 classes: kept for the 19-class dataset,
    uniform for the 11-class one, and each dataset's ignore index during its forward."""
    cfg = load_config('mmseg::ddrnet/ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py')
    weights = list(cfg.model.decode_head.loss_decode[0].class_weight)
    head = build_dataset_aware_head(cfg.model.decode_head, [19, 11, 19], [255, 0, 255])
    assert [
        list(m.out_channels for m in head.get_submodule(n)) for n in ('conv_seg', 'aux_cls_seg')
    ] == [[19, 11, 19]] * 2
    for d, (classes, ignore, weighted) in enumerate(
        [(19, 255, True), (11, 0, False), (19, 255, True)]
    ):
        with head_dataset(head, d):
            assert (head.num_classes, head.out_channels, head.ignore_index) == (
                classes,
                classes,
                ignore,
            )
            assert [loss.class_weight for loss in head.loss_decode] == [
                weights if weighted else None
            ] * 2
    assert head.num_classes == 19 and head.loss_decode[0].class_weight == weights


def test_stock_weights_load_into_every_branch_that_fits(tmp_path):
    """load_from a single-dataset MMSeg checkpoint: BatchNorms into every dataset's branch, the
    classifier into every dataset with its number of classes; that dataset's branch then
    predicts what the stock model does."""
    from mmengine.runner import load_checkpoint, save_checkpoint

    stock_cfg = load_config('mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py').model
    stock_cfg.pretrained = None
    torch.manual_seed(0)
    stock = MODELS.build(copy.deepcopy(stock_cfg))
    with torch.no_grad():
        for m in stock.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2)
    save_checkpoint(dict(state_dict=stock.state_dict()), str(tmp_path / 'stock.pth'))

    model = MODELS.build(
        _model_cfg('fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py', num_classes=(11, 19))
    )
    camvid_classifier = copy.deepcopy(model.decode_head.conv_seg[0].state_dict())
    load_checkpoint(model, str(tmp_path / 'stock.pth'))
    for d in range(2):
        torch.testing.assert_close(
            model.backbone.stem[1].bns[d].running_var,
            stock.backbone.stem[1].running_var,
            rtol=0,
            atol=0,
        )
    torch.testing.assert_close(
        model.decode_head.conv_seg[1].weight, stock.decode_head.conv_seg.weight, rtol=0, atol=0
    )
    for key, value in model.decode_head.conv_seg[0].state_dict().items():
        torch.testing.assert_close(value, camvid_classifier[key], rtol=0, atol=0)
    x = torch.randn(1, 3, 64, 64)
    model.eval(), stock.eval()
    with torch.no_grad():
        model.default_dataset = 1
        torch.testing.assert_close(model(x, mode='tensor'), stock(x, mode='tensor'), rtol=0, atol=0)


def test_imagenet_weights_of_the_stock_config_fill_every_branch(tmp_path):
    """The backbone's init_cfg (ImageNet weights in the stock config) loads into every DSBN
    branch, as it does for DAB-ResNet."""
    from mmengine.runner import save_checkpoint

    backbone_cfg = ConfigDict(type='ResNetV1c', depth=18, norm_cfg=dict(type='BN'))
    torch.manual_seed(1)
    imagenet = MODELS.build(backbone_cfg)
    with torch.no_grad():
        imagenet.stem[1].running_mean.uniform_(-1, 1)
    save_checkpoint(dict(state_dict=imagenet.state_dict()), str(tmp_path / 'r18.pth'))
    cfg = _model_cfg('fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py')
    cfg.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'r18.pth'))
    model = MODELS.build(cfg)
    model.init_weights()
    for d in range(2):
        torch.testing.assert_close(
            model.backbone.stem[1].bns[d].running_mean,
            imagenet.stem[1].running_mean,
            rtol=0,
            atol=0,
        )
        torch.testing.assert_close(
            model.backbone.layer4[1].conv2.weight, imagenet.layer4[1].conv2.weight, rtol=0, atol=0
        )
