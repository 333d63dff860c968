"""mmseg_cdcl.testing.shrink_config: the real configs at test size, everything else theirs."""

import copy
import os.path as osp

from mmengine.config import Config

from conftest import REPO
from mmseg_cdcl.testing import (
    set_crop,
    shrink_config,
    shrink_datasets,
    shrink_schedule,
    unformatted,
)


def _config(name):
    return Config.fromfile(osp.join(REPO, 'configs', f'{name}.py'))


def _transforms(node, kind):
    """Every transform of type ``kind`` under ``node``."""
    if isinstance(node, dict):
        return [node] * (node.get('type') == kind) + _transforms(list(node.values()), kind)
    return [t for v in node for t in _transforms(v, kind)] if isinstance(node, list) else []


def test_cdcl_config_shrinks_to_crops_batches_and_iterations_and_keeps_the_rest():
    original = _config('cdcl_cityscapes_bdd')
    cfg = shrink_config(_config('cdcl_cityscapes_bdd'), crop=(32, 48), per_dataset=3, max_iters=5)
    crops = [t.crop_size for t in _transforms(cfg.train_dataloader, 'RandomCrop')]
    assert crops == [(32, 48)] * 2  # each dataset's pipeline
    assert {t.crop_size for t in _transforms(cfg._cfg_dict, 'RandomCrop')} == {(32, 48)}
    scales = [t.scale for k in ('RandomResize', 'Resize') for t in _transforms(cfg._cfg_dict, k)]
    assert len(scales) >= 6 and set(scales) == {(96, 32)}  # twice the crop's width, its height
    assert cfg.model.data_preprocessor.size == (32, 48) and cfg.model.pretrained is None
    assert cfg.train_dataloader.batch_sampler.batch_sizes == dict(cityscapes=3, bdd100k=3)
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (5, 5)
    assert cfg.param_scheduler[0].end == 5 and cfg.default_hooks.checkpoint.interval == 5
    assert cfg.default_hooks.logger.interval == 1
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert (cfg[loader].num_workers, cfg[loader].persistent_workers) == (0, False)
    # what it does not shrink stays the config's
    for key in ('optim_wrapper', 'val_evaluator', 'visualizer'):
        assert cfg[key] == original[key]
    assert cfg.model.decode_head == original.model.decode_head
    assert cfg.train_cfg.type == original.train_cfg.type == 'DATTrainLoop'


def test_single_dataset_config_gets_a_batch_size_and_data_roots_move_under_data_dir(tmp_path):
    cfg = shrink_config(_config('baselines/pspnet_r18-d8_camvid'), data_dir=str(tmp_path))
    assert cfg.train_dataloader.batch_size == 2
    roots = {
        d.data_root for k in ('train', 'val', 'test') for d in [cfg[f'{k}_dataloader'].dataset]
    }
    assert roots == {str(tmp_path / 'camvid')}  # data/camvid/ under tmp_path


def test_shrink_datasets_changes_pipelines_and_roots_of_plain_dicts(tmp_path):
    datasets = [
        dict(
            type='CityscapesDataset',
            data_root='data/demo/cityscapes',
            pipeline=[
                dict(type='RandomResize', scale=(2048, 1024)),
                dict(type='RandomCrop', crop_size=(512, 1024)),
            ],
        ),
        dict(type='CityscapesDataset', data_root='/abs/cityscapes'),
    ]
    shrink_datasets(datasets, (16, 24), data_dir=str(tmp_path))
    assert datasets[0]['pipeline'] == [
        dict(type='RandomResize', scale=(48, 16)),
        dict(type='RandomCrop', crop_size=(16, 24)),
    ]
    assert datasets[0]['data_root'] == str(tmp_path / 'demo' / 'cityscapes')
    assert datasets[1]['data_root'] == '/abs/cityscapes'  # not under data/: left alone


def test_shrink_schedule_validates_every_val_interval():
    cfg = shrink_schedule(_config('cdcl_cityscapes_bdd'), 8, val_interval=2)
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (8, 2)
    assert cfg.param_scheduler[0].end == 8 and cfg.default_hooks.checkpoint.interval == 8


def test_unformatted_config_holds_the_same_values_and_text_without_yapf():
    cfg = _config('cdcl_cityscapes_bdd')
    formatted = cfg.pretty_text
    plain = unformatted(cfg)
    assert plain.to_dict() == cfg.to_dict() and plain.filename == cfg.filename
    assert cfg.pretty_text == formatted  # the caller's config is left as it was
    # The same config as text, only not laid out by yapf.
    assert plain.pretty_text != formatted
    assert (
        Config.fromstring(plain.pretty_text, '.py').to_dict()
        == Config.fromstring(formatted, '.py').to_dict()
    )


def test_set_crop_changes_the_training_crops_and_nothing_else():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'cdcl_cityscapes_bdd.py'))
    before = copy.deepcopy(cfg.to_dict())
    set_crop(cfg, (48, 40))
    crops = [
        t['crop_size']
        for d in cfg.train_dataloader.dataset.datasets.values()
        for t in d.pipeline
        if t['type'] == 'RandomCrop'
    ]
    assert crops == [(48, 40), (48, 40)] and cfg.model.data_preprocessor.size == (48, 40)
    after = cfg.to_dict()
    for key in ('test_dataloader', 'val_dataloader', 'train_cfg'):
        assert after[key] == before[key]  # test scales stay the config's
