"""Dataset Alternation Training through mmengine's Runner on generated data."""

import os.path as osp
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch.optim.optimizer import register_optimizer_step_post_hook

from conftest import REPO, shrink_config
from mmseg_cdcl import mmengine_checkpoints_allowed
from mmseg_cdcl.datasets import MultiDataset
from mmseg_cdcl.testing import unformatted

CONFIG = osp.join(REPO, 'configs', 'cdcl_cityscapes_bdd.py')


@pytest.fixture(autouse=True)
def in_data_cwd(data_cwd, monkeypatch):
    monkeypatch.chdir(data_cwd)  # where the configs' data/<dataset> roots are


def _runner(
    data_cwd,
    tmp_path,
    name,
    max_iters=2,
    config=CONFIG,
    seed=0,
    optim=None,
    resume=False,
    load_from=None,
    **train_cfg,
):
    cfg = shrink_config(unformatted(Config.fromfile(config)), crop=(32, 32), max_iters=max_iters)
    cfg.default_hooks.checkpoint.interval = 2
    cfg.work_dir = str(tmp_path / name)
    cfg.experiment_name = f'{name}_{time.time()}'  # mmengine shares loggers by name
    cfg.train_cfg.update(train_cfg)
    cfg.randomness = dict(seed=seed, deterministic=True)
    cfg.optim_wrapper.update(optim or {})
    for head in ('decode_head', 'auxiliary_head'):
        cfg.model[head].dropout_ratio = 0  # the same forward in every mode
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.save_best = None
    cfg.default_hooks.pop('visualization')
    cfg.resume, cfg.load_from = resume, load_from
    runner = Runner.from_cfg(cfg)
    runner.steps = 0
    return runner


def _train(runner, data_cwd):
    """Train, counting the optimizer steps in ``runner.steps``."""
    count = register_optimizer_step_post_hook(lambda *_: setattr(runner, 'steps', runner.steps + 1))
    try:
        runner.train()
    finally:
        count.remove()
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


@pytest.mark.slow
def test_accumulate_makes_the_same_update_as_sum(data_cwd, tmp_path):
    runners, weights = {}, {}
    for mode in ('sum', 'accumulate', 'alternate'):  # each built right before training: the
        runners[mode] = _runner(data_cwd, tmp_path, mode, mode=mode)  # same augmentations
        weights[mode] = _train(runners[mode], data_cwd)
    assert runners['sum'].steps == runners['accumulate'].steps == 2
    assert runners['alternate'].steps == 4  # a step per dataset and iteration
    for key, value in weights['sum'].items():
        torch.testing.assert_close(
            weights['accumulate'][key],
            value,
            rtol=1e-4,
            atol=1e-6,
            msg=lambda m, key=key: f'{key}: {m}',
        )
    changed = [
        k
        for k, v in weights['sum'].items()
        if v.is_floating_point() and not torch.allclose(weights['alternate'][k], v)
    ]
    assert 'decode_head.conv_seg.0.weight' in changed


def test_each_dataset_loss_is_logged(data_cwd, tmp_path):
    runner = _runner(data_cwd, tmp_path, 'logged', max_iters=1)
    _train(runner, data_cwd)
    scalars = runner.message_hub.log_scalars
    for name in ('cityscapes', 'bdd100k'):
        for key in ('decode.loss_ce', 'aux.loss_ce', 'loss'):
            assert f'train/{name}.{key}' in scalars
    total = scalars['train/loss'].current()
    parts = sum(scalars[f'train/{n}.loss'].current() for n in ('cityscapes', 'bdd100k'))
    assert total == pytest.approx(parts, rel=1e-6)


@pytest.mark.slow
def test_non_finite_loss_names_dataset_and_iteration(data_cwd, tmp_path):
    runner = _runner(data_cwd, tmp_path, 'nan')
    runner.model.loss_weights = [1.0, float('nan')]
    with pytest.raises(
        FloatingPointError,
        match=r'non-finite loss at iteration 1 for '
        r"dataset\(s\) \['bdd100k'\]: "
        r'bdd100k.decode.loss_ce=nan',
    ):
        _train(runner, data_cwd)
    assert runner.steps == 0  # raised before the optimizer step
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


@pytest.mark.slow
def test_mismatched_datasets_are_reported_before_training(data_cwd, tmp_path):
    runner = _runner(data_cwd, tmp_path, 'mismatch')
    runner.model.decode_head.dataset_num_classes = (19, 11)
    runner.train_loop.dataloader.batch_sampler.dataset_names = ['cityscapes', 'camvid']
    with pytest.raises(ValueError) as error:
        _train(runner, data_cwd)
    assert str(error.value) == (
        'DATTrainLoop: the datasets, sampler and model disagree:\n'
        "  - the sampler has datasets ['cityscapes', 'camvid'], the training dataset "
        "['cityscapes', 'bdd100k']\n"
        "  - decode_head.num_classes[1]=11 but dataset 'bdd100k' has 19 classes"
    )
    assert runner.steps == 0

    runner = _runner(data_cwd, tmp_path, 'mismatch_names')
    runner.model.dataset_names = ('cityscapes', 'camvid')
    with pytest.raises(
        ValueError,
        match=r"model.dataset_names=\['cityscapes', 'camvid'\] but "
        r"the training dataset has \['cityscapes', "
        r"'bdd100k'\]",
    ):
        _train(runner, data_cwd)


@pytest.mark.slow
def test_resume_draws_the_same_batches_without_loading_skipped_ones(
    data_cwd, tmp_path, monkeypatch
):
    loaded = []
    original = MultiDataset._load  # every sample's, whether fetched alone or in a batch
    monkeypatch.setattr(
        MultiDataset, '_load', lambda self, *key: loaded.append(key) or original(self, *key)
    )
    _train(_runner(data_cwd, tmp_path, 'full', max_iters=4), data_cwd)  # checkpoints at 2, 4
    uninterrupted = list(loaded)
    assert len(uninterrupted) == 4 * 4  # 4 iterations of 2 + 2 images

    loaded.clear()
    resumed = _runner(
        data_cwd,
        tmp_path,
        'resumed',
        max_iters=4,
        resume=True,
        load_from=str(tmp_path / 'full' / 'iter_2.pth'),
    )
    _train(resumed, data_cwd)
    assert resumed.iter == 4
    assert loaded == uninterrupted[8:]  # iterations 3 and 4 only, the same images


@pytest.mark.slow
def test_checkpoint_of_another_architecture_is_refused(data_cwd, tmp_path):
    from mmengine.runner import save_checkpoint

    other = str(tmp_path / 'r50.pth')
    state = {k: v for k, v in _runner(data_cwd, tmp_path, 'a').model.state_dict().items()}
    state['backbone.layer1.0.conv1.weight'] = torch.zeros(64, 64, 1, 1)  # a bottleneck's
    save_checkpoint(dict(state_dict=state), other)
    runner = _runner(data_cwd, tmp_path, 'b', load_from=other)
    with pytest.raises(
        ValueError,
        match=r'the checkpoint does not fit the model: 1 tensors have '
        r'other shapes, e.g. backbone.layer1.0.conv1.weight: '
        r'checkpoint \(64, 64, 1, 1\), model \(64, 64, 3, 3\)',
    ):
        _train(runner, data_cwd)
    save_checkpoint(dict(state_dict={'fc.weight': torch.zeros(2)}), other)
    runner = _runner(data_cwd, tmp_path, 'c', load_from=other)
    with pytest.raises(
        ValueError,
        match=r"the checkpoint holds none of the CDCL model's "
        r"weights \(its first keys: \['fc.weight'\]",
    ):
        _train(runner, data_cwd)


@pytest.mark.slow
def test_accumulate_counts_whole_iterations_as_sum_does(data_cwd, tmp_path):
    """optim_wrapper.accumulative_counts: a step every 2 iterations, the loss scaled by 1/2."""
    weights, steps = {}, {}
    for mode in ('sum', 'accumulate'):
        runner = _runner(
            data_cwd,
            tmp_path,
            f'{mode}_counts',
            max_iters=4,
            mode=mode,
            optim=dict(accumulative_counts=2),
        )
        weights[mode], steps[mode] = _train(runner, data_cwd), runner.steps
    assert steps == dict(sum=2, accumulate=2)
    for key, value in weights['sum'].items():
        torch.testing.assert_close(
            weights['accumulate'][key],
            value,
            rtol=1e-4,
            atol=1e-5,
            msg=lambda m, key=key: f'{key}: {m}',
        )


def test_accumulate_refuses_batchnorm_shared_by_the_datasets(data_cwd, tmp_path):
    runner = _runner(
        data_cwd,
        tmp_path,
        'shared_bn',
        mode='accumulate',
        config=osp.join(REPO, 'configs', 'ablations', 'cdcl_cityscapes_bdd_shared_bn.py'),
    )
    with pytest.raises(
        ValueError,
        match=r"DATTrainLoop\(mode='accumulate'\) forwards one "
        r"dataset at a time, which makes mode='sum''s update "
        r'only when every BatchNorm is dataset-specific \(DSBN\); '
        r'28 BatchNorm layers are shared by the datasets \(e.g. '
        r'backbone.stem.1, backbone.stem.4, backbone.stem.7\)',
    ):
        _train(runner, data_cwd)
    assert runner.steps == 0


@pytest.mark.slow
def test_resume_without_a_seed_draws_the_interrupted_runs_batches(data_cwd, tmp_path, monkeypatch):
    """No randomness.seed in the config (as in the shipped ones): each run draws its own
    seed, and the sampler is built before the checkpoint is loaded."""
    loaded = []
    original = MultiDataset._load
    monkeypatch.setattr(
        MultiDataset, '_load', lambda self, *key: loaded.append(key) or original(self, *key)
    )
    full = _runner(data_cwd, tmp_path, 'full', max_iters=4, seed=None)
    _train(full, data_cwd)
    uninterrupted = list(loaded)

    loaded.clear()
    resumed = _runner(
        data_cwd,
        tmp_path,
        'resumed',
        max_iters=4,
        seed=None,
        resume=True,
        load_from=str(tmp_path / 'full' / 'iter_2.pth'),
    )
    assert resumed.train_loop.dataloader.batch_sampler.seed != full.seed  # before loading
    _train(resumed, data_cwd)
    assert loaded == uninterrupted[8:]  # the same images and augmentation seeds


@pytest.mark.slow
def test_resume_with_another_number_of_processes_is_refused(data_cwd, tmp_path):
    two = _runner(data_cwd, tmp_path, 'two', max_iters=2)
    two.train_loop.dataloader.batch_sampler.world_size = 2  # as rank 0 of 2 processes
    _train(two, data_cwd)
    one = _runner(
        data_cwd,
        tmp_path,
        'one',
        max_iters=4,
        resume=True,
        load_from=str(tmp_path / 'two' / 'iter_2.pth'),
    )
    with pytest.raises(
        ValueError,
        match=r'DATTrainLoop: the checkpoint was written by a run of '
        r'2 process\(es\) and this run has 1: each process '
        r'draws its own batch of every dataset',
    ):
        _train(one, data_cwd)
    assert one.steps == 0


@pytest.mark.slow
def test_random_states_are_saved_without_the_hook_in_the_config(data_cwd, tmp_path):
    from mmseg_cdcl.engine.hooks import ResumeHook, RNGStateHook

    cfg = Config.fromfile(CONFIG)
    assert [h['type'] for h in cfg.custom_hooks] == [
        'ProgressBarHook',
        'RNGStateHook',
        'CheckpointDatasetsHook',
        'CheckpointAllowListHook',
    ]
    runner = _runner(data_cwd, tmp_path, 'no_hook', max_iters=2)
    runner._hooks = [h for h in runner.hooks if not isinstance(h, RNGStateHook)]
    _train(runner, data_cwd)
    assert sum(isinstance(h, RNGStateHook) for h in runner.hooks) == 1
    assert sum(isinstance(h, ResumeHook) for h in runner.hooks) == 1
    with mmengine_checkpoints_allowed():
        checkpoint = torch.load(tmp_path / 'no_hook' / 'iter_2.pth')
    assert set(checkpoint['rng_states']) == {'python', 'numpy', 'torch', 'cuda'}
    assert checkpoint['message_hub']['runtime_info']['dat_sampler']['world_size'] == 1


@pytest.mark.slow
def test_resume_after_a_kill_while_last_checkpoint_was_written(data_cwd, tmp_path):
    """mmengine writes work_dir/last_checkpoint with a plain open(): a kill during it leaves it
    empty. --resume then continues from the latest complete iter_N.pth."""
    _train(_runner(data_cwd, tmp_path, 'killed', max_iters=4), data_cwd)  # iter_2, iter_4
    (tmp_path / 'killed' / 'last_checkpoint').write_text('')
    resumed = _runner(data_cwd, tmp_path, 'killed', max_iters=6, resume=True)
    _train(resumed, data_cwd)
    assert resumed.iter == 6 and resumed.steps == 2  # from iter_4.pth: iterations 5 and 6
