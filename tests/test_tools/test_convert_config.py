"""CDCL for MMSeg's model zoo: tools/convert_config.py writes a CDCL config of a stock config,
which trains as tools/train.py trains it and exports to stock MMSeg, for every model family."""

import copy
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.apis import inference_model, init_model
from mmseg.registry import MODELS
from torch import nn

from conftest import (
    REPO,
    assert_mixed_batch_equals_datasets_alone,
    model_heads,
    seg_samples,
    shrink_config,
    thin_model,
    train_in_process,
)
from mmseg_cdcl import mmengine_checkpoints_allowed
from mmseg_cdcl.apis import config_source, export_single_dataset, init_cdcl_model
from mmseg_cdcl.models.layers import DSBN, DatasetBranches
from mmseg_cdcl.testing import unformatted
from mmseg_cdcl.utils import load_config
from mmseg_cdcl.utils.shipped_files import run_tool

DATASETS = dict(
    cityscapes='mmseg::_base_/datasets/cityscapes.py',
    camvid=osp.join(REPO, 'configs', '_base_', 'datasets', 'camvid.py'),
)
FAMILIES = {  # family: its stock config in MMSeg 1.2.2's model zoo
    'fcn_r18-d8': 'fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'pspnet_r18-d8': 'pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'deeplabv3_r18-d8': 'deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'deeplabv3plus_r18-d8': 'deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'upernet_r18': 'upernet/upernet_r18_4xb2-80k_cityscapes-512x1024.py',
    'ocrnet_hr18s': 'ocrnet/ocrnet_hr18s_4xb2-80k_cityscapes-512x1024.py',
    'bisenetv2_fcn': 'bisenetv2/bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py',
    'stdc1': 'stdc/stdc1_4xb12-80k_cityscapes-512x1024.py',
    'pidnet-s': 'pidnet/pidnet-s_2xb6-120k_1024x1024-cityscapes.py',
    'ddrnet_23-slim': 'ddrnet/ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py',
    'segformer_mit-b0': 'segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py',
    'fast_scnn': 'fastscnn/fast_scnn_8xb4-160k_cityscapes-512x1024.py',
    'mobilenet-v2-d8_deeplabv3plus': (
        'mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py'
    ),
    'fpn_r50': 'sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py',
    'danet_r50-d8': 'danet/danet_r50-d8_4xb2-80k_cityscapes-512x1024.py',
    'encnet_r50-d8': 'encnet/encnet_r50-d8_4xb2-80k_cityscapes-512x1024.py',
}
# The classifiers each family's conversion makes per dataset (found, not listed in the code).
CLASSIFIERS = {
    'ocrnet_hr18s': ['decode_head.0.conv_seg', 'decode_head.1.conv_seg'],
    'pidnet-s': ['decode_head.conv_seg', 'decode_head.p_cls_seg'],
    'ddrnet_23-slim': ['decode_head.aux_cls_seg', 'decode_head.conv_seg'],
    'danet_r50-d8': [
        'auxiliary_head.conv_seg',
        'decode_head.cam_conv_seg',
        'decode_head.conv_seg',
        'decode_head.pam_conv_seg',
    ],
    'encnet_r50-d8': ['auxiliary_head.conv_seg', 'decode_head.conv_seg', 'decode_head.se_layer'],
    'bisenetv2_fcn': [
        'auxiliary_head.0.conv_seg',
        'auxiliary_head.1.conv_seg',
        'auxiliary_head.2.conv_seg',
        'auxiliary_head.3.conv_seg',
        'decode_head.conv_seg',
    ],
    'stdc1': [
        'auxiliary_head.0.conv_seg',
        'auxiliary_head.1.conv_seg',
        'decode_head.conv_seg',
    ],  # its boundary head (2 classes) is shared
    'fast_scnn': ['auxiliary_head.0.conv_seg', 'auxiliary_head.1.conv_seg', 'decode_head.conv_seg'],
    'segformer_mit-b0': ['decode_head.conv_seg'],
    'fpn_r50': ['decode_head.conv_seg'],
}


def _stock_load(checkpoint):
    """torch.load of a checkpoint as stock MMSeg does it, without the types mmseg_cdcl
    allow-lists for torch's safe loader."""
    allowed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        return torch.load(checkpoint, map_location='cpu', weights_only=True)
    finally:
        torch.serialization.add_safe_globals(allowed)


def _cdcl_config(family, data_cwd, tmp_path):
    """The converted config, as the tool writes it, shrunk to test size."""
    source = config_source(f'mmseg::{FAMILIES[family]}', DATASETS)
    written = tmp_path / 'cdcl.py'
    written.write_text(source)
    cfg = shrink_config(Config.fromfile(str(written)), crop=(64, 64), per_dataset=2)
    cfg.model.backbone.init_cfg = None  # no ImageNet weights offline
    thin_model(cfg.model)  # test size; the stock config compared with alike
    for split in ('val', 'test'):  # one size, a multiple of 32 (DDRNet, PIDNet need it)
        for dataset in cfg[f'{split}_dataloader'].dataset.datasets.values():
            for transform in dataset.pipeline:
                if transform.type == 'Resize':
                    transform.update(scale=(128, 64), keep_ratio=False)
    if family == 'pidnet-s':
        # MMSeg 1.2.2's class-weighted CrossEntropyLoss indexes its weights with the ignore
        # label 255 and fails on any label map with ignored pixels (mmsegmentation#3734).
        for loss in cfg.model.decode_head.loss_decode:
            if 'class_weight' in loss:
                loss.class_weight = None
    cfg.default_hooks.pop('visualization', None)
    path = str(tmp_path / 'config.py')
    unformatted(cfg).dump(path)
    return path, cfg


def _no_dropout(model):
    """Dropout and stochastic depth draw random numbers differently in separate forwards."""
    for m in model.modules():
        if 'Drop' in type(m).__name__:
            m.eval()
    return model


@pytest.mark.slow
@pytest.mark.parametrize('family', FAMILIES)
def test_stock_config_converts_trains_and_exports(family, data_cwd, tmp_path, monkeypatch):
    config, cfg = _cdcl_config(family, data_cwd, tmp_path)
    assert cfg.model.type == 'CDCLEncoderDecoder'
    assert (cfg.model.dataset_names, cfg.model.num_classes) == (['cityscapes', 'camvid'], [19, 11])

    # Two DAT iterations and per-dataset validation, as tools/train.py runs them.
    work_dir = tmp_path / 'work'
    metrics = train_in_process(config, work_dir, data_cwd, monkeypatch)
    assert {'cityscapes/mIoU', 'camvid/mIoU'} <= set(metrics)
    checkpoint = str(work_dir / 'iter_2.pth')

    # Every BatchNorm is a DSBN, every classifier of the model's classes one per dataset.
    model = MODELS.build(copy.deepcopy(cfg.model))
    with mmengine_checkpoints_allowed():
        model.load_state_dict(torch.load(checkpoint)['state_dict'])
    assert not [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and not any(
            n.startswith(d + '.bns.') for d, dsbn in model.named_modules() if isinstance(dsbn, DSBN)
        )
    ]
    classifiers = sorted(n for n, m in model.named_modules() if isinstance(m, DatasetBranches))
    expected = CLASSIFIERS.get(family, ['auxiliary_head.conv_seg', 'decode_head.conv_seg'])
    assert classifiers == expected
    assert all(
        [
            b.out_channels if hasattr(b, 'out_channels') else b.out_features
            for b in model.get_submodule(n)
        ]
        == [19, 11]
        for n in classifiers
    )

    # A batch mixing the datasets (as the sampler interleaves them) trains as each dataset's
    # samples alone: the same losses and gradients. In float64: BatchNorms after a 1x1 pooling
    # (PIDNet's, DDRNet's) normalise 2 values, whose gradients magnify rounding differences.
    _no_dropout(model.train().double())
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    samples = seg_samples([0, 1, 0, 1], [19, 11], size=(64, 64))
    for sample in samples:  # PIDNet's boundary targets
        sample.gt_edge_map = PixelData(data=(sample.gt_sem_seg.data % 7 == 0).long())
    assert_mixed_batch_equals_datasets_alone(model, x, samples, [[0, 2], [1, 3]], buffers=False)

    # Dataset camvid's branch exported: stock MMSeg predicts what CDCL does, with the stock
    # config's parameters and FLOPs. Stock means: the config and checkpoint name nothing of
    # mmseg_cdcl, the model is built of MMSeg's classes only, and the checkpoint loads without
    # mmseg_cdcl's allow-list (tests/test_apis/test_export.py loads exports in an interpreter
    # without mmseg_cdcl).
    plain_config, plain_checkpoint = export_single_dataset(
        config, checkpoint, 'camvid', str(tmp_path / 'export')
    )
    assert 'mmseg_cdcl' not in open(plain_config).read()
    _stock_load(plain_checkpoint)
    image = str(tmp_path / 'street.png')
    cv2.imwrite(image, np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8))
    plain = init_model(plain_config, plain_checkpoint, device='cpu')
    assert [
        n for n, m in plain.named_modules() if type(m).__module__.startswith('mmseg_cdcl')
    ] == []
    plain_logits = inference_model(plain, image).seg_logits.data.numpy()
    cdcl = init_cdcl_model(cfg, checkpoint, 'camvid')  # camvid's test pipeline, as the export
    expected_logits = inference_model(cdcl, image).seg_logits.data.numpy()
    assert expected_logits.shape == (11, 64, 96)
    np.testing.assert_allclose(plain_logits, expected_logits, rtol=0, atol=1e-4)

    exported = Config.fromfile(plain_config).model
    reference = thin_model(load_config(f'mmseg::{FAMILIES[family]}').model)
    assert exported.type == reference.type  # e.g. CascadeEncoderDecoder for OCRNet
    for head in model_heads(reference):
        if head.num_classes == 19:
            head.num_classes = 11
    reference.pretrained, reference.backbone.init_cfg = None, None
    if family == 'pidnet-s':
        for loss in reference.decode_head.loss_decode:
            if 'class_weight' in loss:
                loss.class_weight = None
    counts = [
        get_model_complexity_info(
            MODELS.build(m).eval(), input_shape=(3, 64, 64), show_table=False, show_arch=False
        )
        for m in (reference, exported)
    ]
    assert counts[0]['params'] == counts[1]['params']
    assert counts[0]['flops'] == counts[1]['flops'] > 0
    routed = get_model_complexity_info(
        cdcl.eval(), input_shape=(3, 64, 64), show_table=False, show_arch=False
    )
    assert routed['flops'] == counts[0]['flops']


@pytest.mark.slow
def test_command_line_writes_the_apis_source_and_names_usage_errors(tmp_path):
    """Run as ``mim run`` runs it (``python TOOL ARGS``) from a folder outside the clone: its
    configs/ argument is the shipped config, the output's missing folder is made, and the
    command it suggests next is the console script of this environment."""
    tool = osp.join(REPO, 'tools', 'convert_config.py')
    stock = f'mmseg::{FAMILIES["pspnet_r18-d8"]}'
    out = tmp_path / 'new_folder' / 'cdcl.py'
    env = dict(os.environ, PATH=os.pathsep.join([osp.dirname(sys.executable), os.environ['PATH']]))
    result = subprocess.run(
        [
            sys.executable,
            tool,
            stock,
            '--dataset',
            f'cityscapes={DATASETS["cityscapes"]}',
            '--dataset',
            'camvid=configs/_base_/datasets/camvid.py',
            '--batch-size',
            'camvid=4',
            '-o',
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.read_text() == config_source(stock, DATASETS, dict(camvid=4))
    assert (
        f'configs/_base_/datasets/camvid.py: not in {tmp_path}, using the installed '
        f'{DATASETS["camvid"]}\n'
    ) in result.stderr
    assert result.stderr.endswith(
        f'wrote {out}: CDCL over cityscapes, camvid; train it with mmseg-cdcl train {out}\n'
    )
    result = subprocess.run(
        [sys.executable, tool, stock, '--dataset', 'cityscapes=x.py', '-o', str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert 'error: CDCL trains on several datasets: give --dataset at least twice' in result.stderr


def test_an_output_that_is_a_folder_is_refused_before_converting(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, 'path', list(sys.path))  # run_tool sets them as python TOOL would
    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    args = ['no_such_stock.py', '--dataset', 'a=x.py', '--dataset', 'b=y.py', '-o', str(tmp_path)]
    assert run_tool('convert_config', args) == 2
    assert capsys.readouterr().err.endswith(
        f'error: -o {tmp_path}: a folder; expected the path of the config file to write\n'
    )
