"""CheckpointDatasetsHook: mmengine's Runner (load_from, --resume, tools/test.py) reads a
checkpoint's datasets as load_cdcl_checkpoint does, EMAHook's checkpoints included; a config
without it still loads a stated checkpoint by name."""

import copy
import os.path as osp
import re
import time
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import EMAHook
from mmengine.runner import Runner, load_checkpoint, save_checkpoint
from mmseg.registry import HOOKS, MODELS
from torch import nn

from conftest import REPO, logged, shrink_config, small_cdcl_cfg
from mmseg_cdcl.apis import load_cdcl_checkpoint
from mmseg_cdcl.engine.hooks import CheckpointDatasetsHook
from mmseg_cdcl.testing import unformatted

BRANCH = re.compile(r'^(.*?\.(?:bns|conv_seg))\.(\d+)\.(.*)$')  # a dataset's DSBN or classifier


def assert_branches_by_name(model, source: dict, source_names) -> None:
    """Each tensor of ``model`` equals ``source``'s, dataset d's branch the source's branch of
    the same dataset name (``torch.equal``)."""
    branches = 0
    for key, value in model.state_dict().items():
        m = BRANCH.match(key)
        if m is not None:
            s = list(source_names).index(model.dataset_names[int(m.group(2))])
            key, branches = f'{m.group(1)}.{s}.{m.group(3)}', branches + 1
        assert torch.equal(value, source[key]), key
    assert branches > 0


def trained(names=('a', 'b'), num_classes=(4, 4)):
    """A small CDCL model whose branches differ, as training leaves them."""
    torch.manual_seed(0)
    model = MODELS.build(small_cdcl_cfg(num_classes, names))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2)
    return model


def runner(model_cfg, tmp_path, hooks=('CheckpointDatasetsHook',), **kwargs):
    return Runner(
        model=model_cfg,
        work_dir=str(tmp_path / f'run_{time.time()}'),
        custom_hooks=[dict(type=h) for h in hooks],
        default_scope='mmseg',
        experiment_name=f'checkpoint_datasets_{time.time()}',
        **kwargs,
    )


def meta(names):
    """A Runner's meta: its config (whose model states the branches' order) and its training
    MultiDataset's metainfo (which mmengine's config dump may give in another order)."""
    cfg = unformatted(Config(dict(model=dict(type='CDCLEncoderDecoder', dataset_names=names))))
    return dict(cfg=cfg.pretty_text, dataset_meta=dict(dataset_names=sorted(names), datasets={}))


def test_it_is_registered_and_runs_first():
    assert HOOKS.get('CheckpointDatasetsHook') is CheckpointDatasetsHook
    assert CheckpointDatasetsHook.priority == 'VERY_HIGH'  # before EMAHook (NORMAL) reads it
    runtime = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'cdcl_runtime.py'))
    assert dict(type='CheckpointDatasetsHook') in runtime.custom_hooks


def test_an_old_checkpoint_loads_by_the_names_its_meta_gives(tmp_path):
    model = trained(('a', 'b'))
    state = model.state_dict()
    for key in ('dataset_names', 'datasets'):
        del state._metadata[''][key]  # written before state dicts stated their datasets
    save_checkpoint(dict(state_dict=state, meta=meta(['a', 'b'])), str(tmp_path / 'old.pth'))
    loading = runner(
        small_cdcl_cfg((4, 4), ('b', 'a')), tmp_path, load_from=str(tmp_path / 'old.pth')
    )
    loading.load_or_resume()
    assert_branches_by_name(loading.model, model.state_dict(), ['a', 'b'])


def test_a_statement_that_contradicts_the_training_config_is_refused(tmp_path):
    state = trained(('a', 'b')).state_dict()
    state._metadata['']['dataset_names'] = ['b', 'a']  # the weights unchanged
    path = str(tmp_path / 'swapped.pth')
    save_checkpoint(dict(state_dict=state, meta=meta(['a', 'b'])), path)
    loading = runner(small_cdcl_cfg((4, 4), ('a', 'b')), tmp_path, load_from=path)
    with pytest.raises(ValueError) as error:
        loading.load_or_resume()
    assert str(error.value) == (
        f'{path} contradicts itself: its state dict states its branches are the datasets '
        "['b', 'a'], its training config (meta.cfg) has model.dataset_names=['a', 'b']: its "
        "statement or its meta was edited, or the meta is another model's; which branch is "
        'which dataset is unknown'
    )


def test_a_resume_in_another_dataset_order_is_refused(tmp_path):
    path = str(tmp_path / 'ab.pth')
    save_checkpoint(dict(state_dict=trained(('a', 'b')).state_dict(), meta={}), path)
    resuming = runner(small_cdcl_cfg((4, 4), ('b', 'a')), tmp_path, load_from=path, resume=True)
    with pytest.raises(ValueError) as error:
        resuming.load_or_resume()
    assert str(error.value) == (
        f"resuming {path}: the model's dataset_names ['b', 'a'] are not the checkpoint's "
        "['a', 'b']: a resume continues the same run (the optimizer's state is per parameter "
        'position); start a run from it with load_from instead'
    )


@pytest.mark.slow
def test_a_config_without_it_still_loads_a_stated_checkpoint_by_name(tmp_path):
    """The three-entry form of a stock MMSeg config (README): the model's state dict hook."""
    config = tmp_path / 'three_entries.py'
    config.write_text(
        "_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']\n"
        "custom_imports = dict(imports=['mmseg_cdcl'], allow_failed_imports=False)\n"
        "model = dict(type='CDCLEncoderDecoder', dataset_names=['cityscapes', 'camvid'], "
        'num_classes=[19, 11], pretrained=None)\n'
    )
    cfg = Config.fromfile(str(config))
    assert 'custom_hooks' not in cfg
    torch.manual_seed(0)
    source = MODELS.build(copy.deepcopy(cfg.model))
    with torch.no_grad():
        for m in source.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.running_var.uniform_(0.5, 2)
    path = str(tmp_path / 'cdcl.pth')
    save_checkpoint(dict(state_dict=source.state_dict(), meta={}), path)
    reordered = copy.deepcopy(cfg.model)
    reordered.update(dataset_names=['camvid', 'cityscapes'], num_classes=[11, 19])
    loading = runner(reordered, tmp_path, hooks=(), load_from=path)
    loading.load_or_resume()
    assert_branches_by_name(loading.model, source.state_dict(), ['cityscapes', 'camvid'])


@pytest.fixture(scope='module')
def ema_run(data_cwd, tmp_path_factory):
    """Two iterations of configs/cdcl_cityscapes_bdd.py at test size with mmengine's EMAHook:
    its checkpoint's state_dict holds the averaged weights, its ema_state_dict ('module.' keys)
    the trained ones."""
    work_dir = tmp_path_factory.mktemp('ema')
    cfg = ema_cfg(data_cwd, work_dir)
    Runner.from_cfg(cfg).train()
    return cfg, str(work_dir / 'iter_2.pth')


def ema_cfg(data_cwd, work_dir, **kwargs):
    cfg = shrink_config(
        unformatted(Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_bdd.py'))),
        crop=(32, 32),
        data_dir=str(data_cwd / 'data'),
    )
    cfg.custom_hooks.append(dict(type='EMAHook', momentum=0.5))
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.save_best = None
    cfg.default_hooks.pop('visualization')
    cfg.update(work_dir=str(work_dir), experiment_name=f'ema_{time.time()}', **kwargs)
    cfg.visualizer.name = cfg.experiment_name
    return cfg


def ema_of(runner) -> EMAHook:
    [hook] = [h for h in runner.hooks if isinstance(h, EMAHook)]
    return hook


def read(path, model_cfg) -> dict:
    """The checkpoint as the package's loader reads it."""
    return load_cdcl_checkpoint(MODELS.build(copy.deepcopy(model_cfg)), path)


@pytest.mark.slow
@pytest.mark.parametrize('old', [False, True])
def test_an_ema_checkpoint_tests_with_its_averaged_weights_by_name(
    ema_run, data_cwd, tmp_path, old
):
    """tools/test.py's load_from of an EMAHook checkpoint, the test config with EMAHook too
    (EMAHook copies the state dict into its averaged model), in the other dataset order; also
    as written before state dicts stated their datasets."""
    cfg, path = ema_run
    checkpoint = read(path, cfg.model)
    averaged, names = checkpoint['state_dict'], ['cityscapes', 'bdd100k']
    assert checkpoint['state_dict']._metadata['']['dataset_names'] == names
    assert checkpoint['ema_state_dict']._metadata['module']['dataset_names'] == names
    if old:
        for key, root in (('state_dict', ''), ('ema_state_dict', 'module')):
            for field in ('dataset_names', 'datasets'):
                del checkpoint[key]._metadata[root][field]
        path = str(tmp_path / 'old.pth')
        torch.save(checkpoint, path)
    test_cfg = ema_cfg(data_cwd, tmp_path / 'test', load_from=path)
    test_cfg.model.dataset_names = names[::-1]
    testing = Runner.from_cfg(test_cfg)
    with logged() as lines:
        testing.call_hook('before_run')  # Runner.test's order: hooks' before_run, then loading
        testing.load_or_resume()
    assert not [line for line in lines if line.startswith('CDCL checkpoint')]
    assert_branches_by_name(testing.model, averaged, names)
    assert_branches_by_name(ema_of(testing).ema_model.module, averaged, names)
    if not old:  # what loaders that see only the state dict read: the averages, by name
        torch.save(dict(state_dict=averaged, meta=checkpoint['meta']), str(tmp_path / 'w.pth'))
        model = MODELS.build(copy.deepcopy(test_cfg.model))
        load_checkpoint(model, str(tmp_path / 'w.pth'))
        assert_branches_by_name(model, averaged, names)


@pytest.mark.slow
@pytest.mark.parametrize('old', [False, True])
def test_an_ema_checkpoint_resumes_both_models(ema_run, data_cwd, tmp_path, old):
    """--resume: the model gets the trained weights, EMAHook's averaged model the averages."""
    cfg, path = ema_run
    checkpoint = read(path, cfg.model)
    averaged = OrderedDict(checkpoint['state_dict'])
    trained_weights = {k[len('module.') :]: v for k, v in checkpoint['ema_state_dict'].items()}
    if old:
        for key, root in (('state_dict', ''), ('ema_state_dict', 'module')):
            for field in ('dataset_names', 'datasets'):
                del checkpoint[key]._metadata[root][field]
        path = str(tmp_path / 'old.pth')
        torch.save(checkpoint, path)
    resumed = Runner.from_cfg(ema_cfg(data_cwd, tmp_path / 'resumed', load_from=path, resume=True))
    with logged() as lines:
        resumed.train()  # resumes at iteration 2 of 2: loads, trains no further
    assert not [line for line in lines if line.startswith('CDCL checkpoint')]
    assert resumed.iter == 2
    names = ['cityscapes', 'bdd100k']
    assert_branches_by_name(resumed.model, trained_weights, names)
    assert_branches_by_name(ema_of(resumed).ema_model.module, averaged, names)
    assert not torch.equal(
        averaged['backbone.stem.0.weight'], trained_weights['backbone.stem.0.weight']
    )
