"""MMSeg's own inference API (init_model + inference_model) on CDCL configs: each image is
predicted with the test pipeline and branch of the dataset it is routed to, named or chosen."""

import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmseg.apis import inference_model, init_model
from mmseg.structures import SegDataSample

from conftest import REPO, small_cdcl_cfg
from mmseg_cdcl.apis import init_cdcl_model
from mmseg_cdcl.models.layers import DSBN

NAMES = ('cityscapes', 'bdd100k')
# Distinct small test resizes (the configs' are 2048x1024 and 1280x720): a BDD100K image of
# 128x64 is 80x40 through its own pipeline, 128x64 through Cityscapes'.
SCALES = dict(cityscapes=(128, 64), bdd100k=(80, 48))
CDCL_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', 'cdcl_*.py'))
    + glob.glob(osp.join(REPO, 'configs', 'demo', 'cdcl_*.py'))
    + glob.glob(osp.join(REPO, 'configs', 'ablations', 'cdcl_*.py'))
)


def _config(**model) -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_bdd.py'))
    cfg.model = small_cdcl_cfg(num_classes=(19, 19), names=NAMES, **model)
    for name, scale in SCALES.items():
        for loader in ('val_dataloader', 'test_dataloader'):
            cfg[loader].dataset.datasets[name].pipeline[1].scale = scale
    return cfg


def _bdd_image(data_cwd) -> str:
    return sorted(glob.glob(str(data_cwd / 'data/bdd100k/images/10k/val/*.jpg')))[0]


def _named(model, cfg, image, name):
    """The prediction of ``image`` as its dataset's test loop makes it: that dataset's test
    pipeline and branch."""
    pipeline = Compose(
        [
            t
            for t in cfg.test_dataloader.dataset.datasets[name].pipeline
            if t.type != 'LoadAnnotations'
        ]
    )
    data = pipeline(dict(img_path=image))
    data['data_samples'].set_metainfo(dict(dataset_name=name))
    with torch.no_grad():
        return model.test_step(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))[
            0
        ]


def _branch_wins(model, name):
    """Auto's choice made certain: every other branch's first DSBN statistics far away."""
    dsbn = next(m for m in model.modules() if isinstance(m, DSBN))
    for d, bn in enumerate(dsbn.bns):
        if model.dataset_names[d] != name:
            bn.running_mean += 100


@pytest.mark.parametrize('route', ['cityscapes', 'bdd100k', 'auto'])
def test_stock_inference_predicts_as_the_dataset_it_is_routed_to(data_cwd, route):
    """Stock init_model with model.default_dataset set as a --cfg-options override: a BDD100K
    image routed to bdd100k (named, or chosen by auto) is predicted exactly as BDD100K's test
    loop predicts it (80x40, not Cityscapes' 128x64); named cityscapes as Cityscapes' does."""
    cfg = _config()
    model = init_model(cfg, None, device='cpu', cfg_options={'model.default_dataset': route})
    target = 'bdd100k' if route == 'auto' else route
    _branch_wins(model, target)
    image = _bdd_image(data_cwd)
    result = inference_model(model, image)
    expected = _named(model, cfg, image, target)
    assert (
        result.img_shape == expected.img_shape == ((40, 80) if target == 'bdd100k' else (64, 128))
    )
    assert result.pipeline_dataset == target
    assert torch.equal(result.seg_logits.data, expected.seg_logits.data)
    assert torch.equal(result.pred_sem_seg.data, expected.pred_sem_seg.data)
    assert 'dataset_inputs' not in result
    if route == 'auto':
        assert result.dataset_name == 'bdd100k' and result.dataset_scores['bdd100k'] > 0.99


def test_init_cdcl_model_auto_predicts_as_the_chosen_dataset(data_cwd):
    """Issue 23 e: auto used to predict every image with the first dataset's pipeline."""
    cfg = _config()
    model = init_cdcl_model(cfg, None, 'auto')
    _branch_wins(model, 'bdd100k')
    image = _bdd_image(data_cwd)
    result = inference_model(model, image)
    expected = _named(model, cfg, image, 'bdd100k')
    assert (result.dataset_name, result.pipeline_dataset) == ('bdd100k', 'bdd100k')
    assert torch.equal(result.seg_logits.data, expected.seg_logits.data)


def test_ensemble_predicts_on_the_first_datasets_pipeline(data_cwd):
    model = init_model(
        _config(), None, device='cpu', cfg_options={'model.default_dataset': 'ensemble'}
    )
    result = inference_model(model, np.zeros((64, 128, 3), np.uint8))
    assert (result.pipeline_dataset, result.img_shape) == ('cityscapes', (64, 128))
    assert set(result.dataset_scores) == set(NAMES)


def test_no_default_dataset_is_a_clear_error(data_cwd):
    model = init_model(_config(), None, device='cpu')
    with pytest.raises(
        ValueError,
        match=r"sample 0 \(.*\.jpg\) has no 'dataset_idx' in its "
        r'metainfo.*or set model.default_dataset',
    ):
        inference_model(model, _bdd_image(data_cwd))


@pytest.mark.parametrize('path', CDCL_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_every_shipped_cdcl_config_gives_init_model_each_datasets_test_pipeline(path):
    """init_model on the shipped config as it is: inference_model's test_pipeline loads the
    image, then runs each dataset's test pipeline of the config's test MultiDataset."""
    model = init_model(path, None, device='cpu', cfg_options={'model.default_dataset': 'auto'})
    cfg = Config.fromfile(path)
    datasets = cfg.test_dataloader.dataset.datasets
    load, each = model.cfg.test_pipeline
    assert load == datasets[model.dataset_names[0]].pipeline[0]
    assert each.type == 'DatasetTestPipelines'
    assert each.pipelines == {n: datasets[n].pipeline for n in model.dataset_names}
    # As inference_model runs it on an array.
    pipeline = Compose([dict(load, type='LoadImageFromNDArray'), each])
    sample = pipeline(dict(img=np.zeros((8, 16, 3), np.uint8)))['data_samples']
    assert isinstance(sample, SegDataSample) and sample.pipeline_dataset == model.dataset_names[0]
    assert set(sample.dataset_inputs) == set(model.dataset_names[1:])
