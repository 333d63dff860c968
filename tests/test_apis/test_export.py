"""A CDCL dataset branch exported to plain MMSeg predicts the same, at the plain model's cost."""

import os.path as osp
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.runner import save_checkpoint
from mmseg.apis import inference_model, init_model
from mmseg.registry import MODELS
from torch import nn

from mmseg_cdcl.testing import unformatted

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(REPO, 'configs', '_base_', 'models', 'cdcl_pspnet_r18-d8.py')
CAMVID_CLASSES = (
    'sky',
    'building',
    'pole',
    'road',
    'sidewalk',
    'tree',
    'signsymbol',
    'fence',
    'car',
    'pedestrian',
    'bicyclist',
)

PLAIN = textwrap.dedent("""
    import sys
    import numpy as np
    from mmseg.apis import inference_model, init_model
    model = init_model(sys.argv[1], sys.argv[2], device='cpu')
    result = inference_model(model, sys.argv[3])
    assert 'mmseg_cdcl' not in sys.modules
    np.save(sys.argv[4], result.seg_logits.data.numpy())
    print(type(model.backbone).__name__, type(model.decode_head).__name__,
          len(model.dataset_meta['classes']), model.dataset_meta['classes'][-1])
""")


@pytest.fixture(scope='module')
def cdcl(tmp_path_factory):
    """A CDCL (cityscapes, camvid) PSPNet-R18-D8 config and a checkpoint with distinct
    branches, as training leaves them."""
    tmp = tmp_path_factory.mktemp('cdcl')
    config = tmp / 'cdcl.py'
    config.write_text(
        textwrap.dedent(f"""
        _base_ = [{BASE!r}]
        model = dict(dataset_names=['cityscapes', 'camvid'], pretrained=None,
                     backbone=dict(num_datasets=2), decode_head=dict(num_classes=[19, 11]),
                     auxiliary_head=dict(num_classes=[19, 11]))
        test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
    """)
    )
    cfg = Config.fromfile(str(config))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2)
    checkpoint = tmp / 'cdcl.pth'
    meta = dict(
        dataset_meta=dict(
            datasets=dict(
                camvid=dict(classes=CAMVID_CLASSES, palette=[[i * 20, 0, 0] for i in range(11)])
            )
        )
    )
    save_checkpoint(dict(state_dict=model.state_dict(), meta=meta), str(checkpoint))
    image = tmp / 'street.png'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8))
    return config, checkpoint, image


@pytest.mark.slow
def test_exported_branch_predicts_as_cdcl_in_stock_mmseg(cdcl, tmp_path):
    config, checkpoint, image = cdcl
    out = tmp_path / 'export'
    subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'export_single_dataset.py'),
            str(config),
            str(checkpoint),
            '--dataset',
            'camvid',
            '--out-dir',
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    plain = subprocess.run(
        [
            sys.executable,
            '-c',
            PLAIN,
            str(out / 'camvid.py'),
            str(out / 'camvid.pth'),
            str(image),
            str(tmp_path / 'plain.npy'),
        ],
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[-1].split() == ['ResNetV1c', 'PSPHead', '11', 'bicyclist']

    cfg = Config.fromfile(str(config))
    cfg.model.default_dataset = 'camvid'  # inference_model's samples carry no dataset_idx
    cdcl_model = init_model(cfg, str(checkpoint), device='cpu')
    expected = inference_model(cdcl_model, str(image)).seg_logits.data.numpy()
    assert expected.shape == (11, 64, 96)
    np.testing.assert_allclose(np.load(tmp_path / 'plain.npy'), expected, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_same_params_and_flops_as_stock_pspnet_r18(cdcl, tmp_path):
    config, checkpoint, _ = cdcl
    from mmseg_cdcl.apis import export_single_dataset

    plain_cfg, _ = export_single_dataset(str(config), str(checkpoint), 'cityscapes', str(tmp_path))
    exported = MODELS.build(Config.fromfile(plain_cfg).model)
    stock = MODELS.build(
        get_config('mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py').model
    )
    cfg = Config.fromfile(str(config))
    cfg.model.default_dataset = 'cityscapes'
    cdcl_model = MODELS.build(cfg.model)

    shape = (3, 128, 128)  # FLOPs scale with the pixels; 512x512 figures are in README
    stats = [
        get_model_complexity_info(m.eval(), input_shape=shape, show_table=False, show_arch=False)
        for m in (stock, exported, cdcl_model)
    ]
    assert stats[0]['params'] == stats[1]['params'] == 12790086
    assert stats[0]['flops'] == stats[1]['flops'] == stats[2]['flops'] > 3e9


def test_unknown_dataset_lists_known(cdcl, tmp_path):
    config, checkpoint, _ = cdcl
    result = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'export_single_dataset.py'),
            str(config),
            str(checkpoint),
            '--dataset',
            'bdd100k',
            '--out-dir',
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert (
        "unknown dataset 'bdd100k': the model's datasets are ['cityscapes', 'camvid']"
        in result.stderr
    )
    assert not any(tmp_path.iterdir())  # nothing written


def test_export_carries_the_label_space_and_stays_stock(cdcl, tmp_path):
    """The dataset's mapping into the model's label space goes with the export (config and
    checkpoint meta); the plain model still predicts the dataset's own classes."""
    from mmseg_cdcl.apis import export_single_dataset

    config, checkpoint, _ = cdcl
    cfg = Config.fromfile(str(config))
    cfg.model.label_space = dict(
        classes=['flat', 'other'],
        mapping=dict(
            cityscapes=['flat'] * 2 + ['other'] * 17,
            camvid=['other'] * 3 + ['flat'] * 2 + ['other'] * 6,
        ),
    )
    plain_cfg, plain_ckpt = export_single_dataset(cfg, str(checkpoint), 'camvid', str(tmp_path))
    exported = Config.fromfile(plain_cfg)
    assert exported.label_space.mapping == dict(camvid=['other'] * 3 + ['flat'] * 2 + ['other'] * 6)
    assert 'label_space' not in exported.model and exported.model.type == 'EncoderDecoder'
    assert exported.model.decode_head.num_classes == 11
    assert torch.load(plain_ckpt)['meta']['label_space'] == exported.label_space.to_dict()


def test_a_cascade_exported_from_a_checkpoint_without_dataset_meta_loads_in_stock_mmseg(tmp_path):
    """PointRend converted to CDCL, its checkpoint without meta: the export states the
    dataset's classes and palette, without which stock init_model fails on a cascade."""
    from mmseg_cdcl.apis import export_single_dataset
    from mmseg_cdcl.utils import load_config

    cfg = load_config('mmseg::_base_/models/pointrend_r50.py')
    cfg.model.update(
        type='CDCLEncoderDecoder',
        dataset_names=['cityscapes', 'camvid'],
        num_classes=[19, 11],
        pretrained=None,
    )
    cfg.model.backbone.init_cfg = None
    cfg.test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
    unformatted(cfg).dump(str(tmp_path / 'pointrend.py'))
    save_checkpoint(
        dict(state_dict=MODELS.build(cfg.model).state_dict()), str(tmp_path / 'pointrend.pth')
    )
    plain_cfg, plain_ckpt = export_single_dataset(
        str(tmp_path / 'pointrend.py'),
        str(tmp_path / 'pointrend.pth'),
        'camvid',
        str(tmp_path / 'out'),
    )
    meta = torch.load(plain_ckpt, weights_only=True)['meta']['dataset_meta']
    assert meta['classes'] == tuple(str(i) for i in range(11))  # the config names none
    assert len(meta['palette']) == 11
    loads = textwrap.dedent("""
        import sys
        from mmseg.apis import init_model
        model = init_model(sys.argv[1], sys.argv[2], device='cpu')
        assert 'mmseg_cdcl' not in sys.modules
        print(type(model).__name__, len(model.dataset_meta['classes']))
    """)
    stock = subprocess.run(
        [sys.executable, '-c', loads, plain_cfg, plain_ckpt], capture_output=True, text=True
    )
    assert stock.returncode == 0, stock.stderr
    assert stock.stdout.split()[-2:] == ['CascadeEncoderDecoder', '11']


def test_the_export_names_the_classes_the_config_gives(cdcl, tmp_path):
    """No dataset_meta in the checkpoint for cityscapes: the config's dataset names them."""
    from mmseg_cdcl.apis import export_single_dataset

    config, checkpoint, _ = cdcl
    cfg = Config.fromfile(str(config))
    cfg.test_dataloader = dict(
        dataset=dict(
            type='MultiDataset',
            datasets=dict(cityscapes=dict(type='CityscapesDataset', data_root='nowhere')),
        )
    )
    _, plain_ckpt = export_single_dataset(cfg, str(checkpoint), 'cityscapes', str(tmp_path))
    meta = torch.load(plain_ckpt, weights_only=True)['meta']['dataset_meta']
    from mmseg.datasets import CityscapesDataset

    assert meta['classes'] == CityscapesDataset.METAINFO['classes']
    assert meta['palette'] == CityscapesDataset.METAINFO['palette']


UNIVERSAL = osp.join(REPO, 'configs', '_base_', 'label_spaces', 'universal_cityscapes_camvid.py')


@pytest.mark.slow
def test_a_universal_models_branch_exports_with_the_universal_classifier(cdcl, tmp_path):
    """One dataset's DSBN branch with the one classifier: stock init_model (without mmseg_cdcl)
    predicts the universal classes as the CDCL model does for that dataset, named and coloured
    as the label space; the dataset's classes travel as unions of them."""
    _, _, image = cdcl
    config = tmp_path / 'universal.py'
    config.write_text(
        textwrap.dedent(f"""
        _base_ = [{BASE!r}, {UNIVERSAL!r}]
        model = dict(dataset_names=['cityscapes', 'camvid'], pretrained=None,
                     backbone=dict(num_datasets=2), decode_head=dict(num_classes=[19, 11]),
                     auxiliary_head=dict(num_classes=[19, 11]),
                     label_space={{{{_base_.label_space}}}}, universal_head=True)
        test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
    """)
    )
    cfg = Config.fromfile(str(config))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # branches of distinct statistics
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2)
    checkpoint = tmp_path / 'universal.pth'
    save_checkpoint(dict(state_dict=model.state_dict(), meta={}), str(checkpoint))
    from mmseg_cdcl.apis import export_single_dataset

    plain_cfg, plain_ckpt = export_single_dataset(
        str(config), str(checkpoint), 'camvid', str(tmp_path / 'out')
    )
    plain = subprocess.run(
        [sys.executable, '-c', PLAIN, plain_cfg, plain_ckpt, str(image), str(tmp_path / 'p.npy')],
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[-1].split() == ['ResNetV1c', 'PSPHead', '19', 'bicycle']
    cfg.model.default_dataset = 'camvid'
    cdcl_model = init_model(cfg, str(checkpoint), device='cpu')
    expected = inference_model(cdcl_model, str(image))
    assert expected.metainfo['prediction_space']['name'] == 'label_space'
    logits = torch.from_numpy(np.load(tmp_path / 'p.npy'))
    torch.testing.assert_close(logits.softmax(0), expected.seg_logits.data.exp(), atol=1e-5, rtol=0)
    exported = Config.fromfile(plain_cfg)
    assert exported.model.decode_head.num_classes == exported.model.auxiliary_head.num_classes == 19
    assert exported.universal_label_space.mapping.camvid[5] == ['vegetation', 'terrain']
    # CamVid's labels cannot score predictions in the universal classes: no test data there
    assert 'test_evaluator' not in exported and 'type' not in exported.test_dataloader.dataset
    stock = init_model(plain_cfg, plain_ckpt, device='cpu')
    assert stock.dataset_meta['palette'][0] == [128, 64, 128]  # the label space's colours
