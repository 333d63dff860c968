"""init_cdcl_model: the chosen dataset's branch, label space and colours; the caller's config
untouched."""

import copy
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from mmseg.registry import MODELS

from conftest import REPO, small_cdcl_cfg
from mmseg_cdcl.apis import init_cdcl_model
from mmseg_cdcl.datasets import CamVidDataset
from mmseg_cdcl.testing import shrink_datasets

CAMVID = dict(
    classes=tuple(f'c{i}' for i in range(11)),
    palette=[[i * 20, 1, 2] for i in range(11)],
    ignore_index=255,
)


@pytest.fixture(scope='module')
def cdcl(tmp_path_factory):
    """The Cityscapes + CamVid config (thin heads) and checkpoints with and without the
    training MultiDataset's dataset_meta."""
    init_default_scope('mmseg')  # the autouse fixture sets it per test, after this one
    tmp = tmp_path_factory.mktemp('cdcl')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_camvid.py'))
    shrink_datasets(cfg, (32, 32))  # test pipelines resize to 64x32, not 2048x1024
    cfg.model = small_cdcl_cfg(num_classes=(19, 11), names=('cityscapes', 'camvid'))
    cfg.test_dataloader.dataset.datasets.camvid.ignore_index = 250
    state_dict = MODELS.build(cfg.model).state_dict()
    with_meta, without = str(tmp / 'with_meta.pth'), str(tmp / 'without_meta.pth')
    save_checkpoint(
        dict(
            state_dict=state_dict,
            meta=dict(
                dataset_meta=dict(
                    classes=('road',),
                    dataset_names=['cityscapes', 'camvid'],
                    datasets=dict(camvid=CAMVID),
                )
            ),
        ),
        with_meta,
    )
    save_checkpoint(dict(state_dict=state_dict, meta={}), without)
    return cfg, with_meta, without


def test_dataset_meta_is_the_checkpoints_for_the_chosen_dataset(cdcl):
    cfg, with_meta, _ = cdcl
    model = init_cdcl_model(cfg, with_meta, 'camvid')
    assert model.dataset_meta == CAMVID
    assert model.cfg.model.default_dataset == 'camvid'


def test_dataset_meta_is_the_configs_dataset_without_checkpoint_meta(cdcl):
    cfg, _, without = cdcl
    for checkpoint in (without, None):
        meta = init_cdcl_model(cfg, checkpoint, 'camvid').dataset_meta
        assert meta['classes'] == CamVidDataset.METAINFO['classes']
        assert meta['palette'] == CamVidDataset.METAINFO['palette']
        assert meta['ignore_index'] == 250  # the config's test_dataloader's
    meta = init_cdcl_model(cfg, without, 'cityscapes').dataset_meta
    assert (len(meta['classes']), meta['classes'][-1], meta['ignore_index']) == (19, 'bicycle', 255)


def test_callers_config_is_left_unchanged(cdcl):
    cfg, with_meta, _ = cdcl
    before = copy.deepcopy(cfg.to_dict())
    init_cdcl_model(cfg, with_meta, 'camvid')
    assert cfg.to_dict() == before
    assert 'default_dataset' not in cfg.model and cfg.model.train_cfg == {}


def test_unknown_dataset_and_unknown_classes_are_named(cdcl):
    cfg, _, without = cdcl
    with pytest.raises(
        ValueError,
        match=r"unknown dataset 'kitti': the model's datasets are "
        r"\['cityscapes', 'camvid'\]",
    ):
        init_cdcl_model(cfg, without, 'kitti')
    model_only = Config(dict(model=cfg.model))
    with pytest.raises(
        ValueError,
        match=r"no classes for dataset 'camvid': the checkpoint's "
        r'meta has no dataset_meta.datasets.camvid and no '
        r'test/val/train_dataloader of the config lists '
        r"'camvid' under dataset.datasets",
    ):
        init_cdcl_model(model_only, without, 'camvid')


@pytest.mark.parametrize('route', ['auto', 'ensemble'])
def test_images_of_unknown_source_through_mmsegs_inference_model(cdcl, tmp_path, route):
    """The contract: init_cdcl_model(config, checkpoint, 'auto') works with
    mmseg.apis.inference_model for one image or a list; each result names its branch and a
    score per dataset. Different classes per dataset: ensemble needs a label space."""
    import cv2
    import numpy as np
    from mmseg.apis import inference_model

    cfg, with_meta, _ = cdcl
    cfg = copy.deepcopy(cfg)
    cfg.model.label_space = dict(
        classes=['flat', 'other'],
        palette=[[0, 0, 0], [255, 255, 255]],
        mapping=dict(
            cityscapes=dict(road='flat', sidewalk='flat'),
            camvid=['other'] * 3 + ['flat'] * 2 + ['other'] * 6,
        ),
    )
    images = []
    for i in range(2):
        images.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(images[-1], np.random.default_rng(i).integers(0, 255, (32, 48, 3), np.uint8))
    model = init_cdcl_model(cfg, with_meta, route)
    assert model.dataset_meta == dict(
        classes=('flat', 'other'), palette=[[0, 0, 0], [255, 255, 255]]
    )
    one, many = inference_model(model, images[0]), inference_model(model, images)
    for result in [one, *many]:
        assert result.dataset_name in ('cityscapes', 'camvid')
        assert set(result.dataset_scores) == {'cityscapes', 'camvid'}
        assert sum(result.dataset_scores.values()) == pytest.approx(1)
        assert result.seg_logits.data.shape == (2, 32, 48)
    assert one.dataset_scores == pytest.approx(many[0].dataset_scores)
    with pytest.raises(
        ValueError,
        match=r"unknown dataset 'kitti': the model's datasets are "
        r"\['cityscapes', 'camvid'\], or 'auto' or 'ensemble'",
    ):
        init_cdcl_model(cfg, with_meta, 'kitti')
