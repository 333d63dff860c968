"""``custom_imports = dict(imports=['mmseg_cdcl'])`` is all an MMSeg config needs."""

import subprocess
import sys
import textwrap

import pytest

import mmseg_cdcl

BUILD = textwrap.dedent("""
    import sys
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    assert 'mmseg_cdcl' not in sys.modules
    cfg = Config.fromfile(sys.argv[1])  # imports custom_imports
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    norms = sorted({type(m).__name__ for m in model.modules() if 'Norm' in type(m).__name__
                    or type(m).__name__ == 'DSBN'})
    print(type(model).__name__, type(model.backbone).__name__, norms,
          sum(p.numel() for p in model.parameters()))
""")


def _build(tmp_path, body):
    config = tmp_path / 'config.py'
    config.write_text(textwrap.dedent(body))
    result = subprocess.run(
        [sys.executable, '-c', BUILD, str(config)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split(maxsplit=2)


def test_version():
    assert mmseg_cdcl.__version__ == '0.1.0'


def test_stock_mmseg_config_with_custom_imports(tmp_path):
    segmentor, backbone, rest = _build(
        tmp_path,
        """
        _base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
        custom_imports = dict(imports=['mmseg_cdcl'], allow_failed_imports=False)
    """,
    )
    assert (segmentor, backbone) == ('EncoderDecoder', 'ResNetV1c')
    assert rest.strip() == "['SyncBatchNorm'] 12790086"  # stock PSPNet-R18-D8: 12.79 M params


@pytest.mark.slow
def test_dsbn_in_a_stock_backbone_and_cdcl_components_from_config(tmp_path):
    segmentor, backbone, rest = _build(
        tmp_path,
        """
        _base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
        custom_imports = dict(imports=['mmseg_cdcl'], allow_failed_imports=False)
        dsbn = dict(type='DSBN', num_datasets=2, requires_grad=True)
        model = dict(
            _delete_=True, type='CDCLEncoderDecoder', dataset_names=['cityscapes', 'camvid'],
            data_preprocessor={{_base_.data_preprocessor}},
            backbone=dict(type='ResNetV1c', depth=18, dilations=(1, 1, 2, 4),
                          strides=(1, 2, 1, 1), norm_cfg=dsbn),
            decode_head=dict(type='DABPSPHead', in_channels=512, in_index=3, channels=128,
                             num_classes=[19, 11]),
            auxiliary_head=dict(type='DABFCNHead', in_channels=256, in_index=2, channels=64,
                                num_convs=1, num_classes=[19, 11]),
            train_cfg=dict(), test_cfg=dict(mode='whole'))
    """,
    )
    assert (segmentor, backbone) == ('CDCLEncoderDecoder', 'ResNetV1c')
    assert rest.startswith("['BatchNorm2d', 'DSBN']")
