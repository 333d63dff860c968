"""``custom_imports = dict(imports=['mmseg_cdcl'])`` is all an MMSeg config needs."""

import json
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
from mmengine.config import Config

import mmseg_cdcl
from conftest import REPO

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


ORDERS = textwrap.dedent("""
    import json, os, sys, warnings
    import torch  # what mmseg_cdcl imports, once: each order is a forked child
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS


    def register_users_own():
        @DATASETS.register_module()
        class CamVidDataset(BaseSegDataset):
            pass

        @DATASETS.register_module()
        class MultiDataset(BaseSegDataset):
            pass


    def names_after(order):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            if order == 'user first':
                register_users_own()
                import mmseg_cdcl
            elif order == 'plugin first':
                import mmseg_cdcl
                register_users_own()
            else:
                import mmseg_cdcl
        names = ('CamVidDataset', 'MultiDataset', 'CDCLCamVidDataset', 'CDCLMultiDataset')
        return dict(
            built={n: DATASETS.get(n).__module__ for n in names},
            warnings=[str(w.message) for w in caught if 'mmseg_cdcl' in str(w.message)])


    results = {}
    for order in sys.argv[1:]:
        read, write = os.pipe()
        if os.fork() == 0:
            with os.fdopen(write, 'w') as f:
                json.dump(names_after(order), f)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            results[order] = json.load(f)
        os.wait()
    print(json.dumps(results))
""")
ORDER_NAMES = ['user first', 'plugin first', 'no user class']


@pytest.fixture(scope='module')
def orders():
    done = subprocess.run(
        [sys.executable, '-c', ORDERS, *ORDER_NAMES], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize('order', ORDER_NAMES)
def test_a_users_class_of_a_generic_name_takes_it_in_either_order(orders, order):
    """A user's ``CamVidDataset``/``MultiDataset`` in MMSeg's registry, registered before or
    after the import, is what the name builds; the plugin's are its own names, which the
    shipped configs use. Without a user's class the generic names build the plugin's (configs
    written before its own names)."""
    result = orders[order]
    plugin = {
        'CDCLCamVidDataset': 'mmseg_cdcl.datasets.camvid',
        'CDCLMultiDataset': 'mmseg_cdcl.datasets.multi_dataset',
    }
    generic = dict(CamVidDataset='__main__', MultiDataset='__main__')
    if order == 'no user class':
        generic = dict(
            CamVidDataset=plugin['CDCLCamVidDataset'], MultiDataset=plugin['CDCLMultiDataset']
        )
    assert result['built'] == {**generic, **plugin}
    assert result['warnings'] == (
        [
            "'CamVidDataset' in the mmseg dataset registry is __main__.register_users_own."
            "<locals>.CamVidDataset; mmseg_cdcl's mmseg_cdcl.datasets.camvid.CamVidDataset is "
            "'CDCLCamVidDataset'",
            "'MultiDataset' in the mmseg dataset registry is __main__.register_users_own."
            "<locals>.MultiDataset; mmseg_cdcl's mmseg_cdcl.datasets.multi_dataset.MultiDataset "
            "is 'CDCLMultiDataset'",
        ]
        if order == 'user first'
        else []
    )


def test_the_shipped_configs_name_the_plugins_own_datasets():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_camvid.py'))
    datasets = cfg.train_dataloader.dataset
    assert datasets.type == 'CDCLMultiDataset'
    assert datasets.datasets.camvid.type == 'CDCLCamVidDataset'
