"""Real runs of tools/train.py (and test.py) for every paper config, at test size; the
baselines' configs train in this process, as tools/train.py does."""

import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from mmengine.config import Config

from conftest import REPO, shared_folder, shrink_config, train_in_process
from mmseg_cdcl.testing import unformatted

# Each test trains or runs a tool in a fresh interpreter.
pytestmark = pytest.mark.slow

CDCL = [
    'cdcl_cityscapes_bdd',
    'cdcl_cityscapes_camvid',
    'cdcl_cityscapes_bdd_camvid',
    'ablations/cdcl_cityscapes_bdd_interval2',
    'ablations/cdcl_cityscapes_bdd_alternate',
    'ablations/cdcl_cityscapes_bdd_shared_bn',
]
DATASETS = {
    'cdcl_cityscapes_bdd': ['cityscapes', 'bdd100k'],
    'cdcl_cityscapes_camvid': ['cityscapes', 'camvid'],
    'cdcl_cityscapes_bdd_camvid': ['cityscapes', 'bdd100k', 'camvid'],
}


def _run(tool, config, data_cwd, work_dir, *args, check=True, max_iters=2):
    cfg = shrink_config(
        Config.fromfile(osp.join(REPO, 'configs', f'{config}.py')), max_iters=max_iters
    )
    cfg.default_hooks.pop('visualization')
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'config.py')
    unformatted(cfg).dump(path)
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', tool), path, *args, '--work-dir', work_dir],
        cwd=data_cwd,
        capture_output=True,
        text=True,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _val_metrics(work_dir):
    [scalars] = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        return [json.loads(line) for line in f if 'mIoU' in line][-1]


@pytest.fixture(scope='module')
def trained_bdd(data_cwd, tmp_path_factory):
    """A run of tools/train.py on cdcl_cityscapes_bdd at test size, shared by the tests that
    read one (config.py, iter_2.pth, best_mIoU_iter_2.pth, the logs)."""
    return shared_folder(
        tmp_path_factory,
        'cdcl_cityscapes_bdd',
        lambda work_dir: _run('train.py', 'cdcl_cityscapes_bdd', data_cwd, str(work_dir)),
    )


@pytest.mark.parametrize('config', CDCL)
def test_cdcl_configs_train_and_evaluate_per_dataset(
    config, data_cwd, tmp_path, request, monkeypatch
):
    # Runs of tools/train.py the session shares (conftest's trained_cdcl is the same run); the
    # other configs train in this process, as tools/train.py does.
    shared = dict(cdcl_cityscapes_bdd='trained_bdd', cdcl_cityscapes_camvid='trained_cdcl')
    if config in shared:
        tmp_path = request.getfixturevalue(shared[config])
    else:
        train_in_process(_config(config, str(tmp_path)), str(tmp_path), data_cwd, monkeypatch)
    names = DATASETS.get(config, DATASETS['cdcl_cityscapes_bdd'])
    metrics = _val_metrics(str(tmp_path))
    for name in names:
        for key in ('mIoU', 'mAcc', 'aAcc'):
            assert 0 <= metrics[f'{name}/{key}'] <= 100
    assert metrics['mIoU'] == pytest.approx(
        sum(metrics[f'{n}/mIoU'] for n in names) / len(names), abs=0.01
    )
    assert osp.isfile(tmp_path / 'iter_2.pth')
    assert glob.glob(str(tmp_path / 'best_mIoU_iter_2.pth'))


def _config(config, work_dir, **options):
    """The config at test size, written to ``work_dir`` as tools/train.py would take it."""
    cfg = shrink_config(Config.fromfile(osp.join(REPO, 'configs', f'{config}.py')))
    cfg.default_hooks.pop('visualization')
    cfg.merge_from_dict(options)
    os.makedirs(work_dir, exist_ok=True)
    unformatted(cfg).dump(osp.join(work_dir, 'config.py'))
    return osp.join(work_dir, 'config.py')


def test_baselines_single_finetune_and_label_remap(data_cwd, tmp_path, monkeypatch):
    """The baseline configs train (in this process: the command line is the CDCL configs')."""
    for name in ('cityscapes', 'bdd100k', 'camvid'):
        work_dir = str(tmp_path / name)
        config = _config(f'baselines/pspnet_r18-d8_{name}', work_dir)
        assert 0 <= train_in_process(config, work_dir, data_cwd, monkeypatch)['mIoU'] <= 100
    finetune = str(tmp_path / 'finetune')
    config = _config(
        'baselines/pspnet_r18-d8_cityscapes_to_bdd100k_finetune',
        finetune,
        load_from=str(tmp_path / 'cityscapes' / 'iter_2.pth'),
    )
    metrics = train_in_process(config, finetune, data_cwd, monkeypatch)
    assert {'cityscapes/mIoU', 'bdd100k/mIoU'} <= set(metrics)
    [log] = glob.glob(osp.join(finetune, '*', '*.log'))
    assert f'Load checkpoint from {tmp_path / "cityscapes" / "iter_2.pth"}' in open(log).read()
    remap = str(tmp_path / 'remap')
    config = _config('baselines/pspnet_r18-d8_cityscapes_bdd100k_label_remap', remap)
    metrics = train_in_process(config, remap, data_cwd, monkeypatch)
    assert {'cityscapes/mIoU', 'bdd100k/mIoU'} <= set(metrics)


def _files(folder):
    """Checkpoints and logs by path (not the config each run dumps)."""
    return {
        p: open(p, 'rb').read()
        for p in sorted(glob.glob(f'{folder}/**', recursive=True))
        if osp.isfile(p) and not p.endswith('.py')
    }


def test_failed_runs_keep_earlier_checkpoints_and_logs(data_cwd, trained_bdd, tmp_path):
    work_dir = str(tmp_path / 'run')
    shutil.copytree(trained_bdd, work_dir)  # a finished run, here
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:  # mmengine's absolute path
        f.write(osp.join(work_dir, 'iter_2.pth'))
    before = _files(work_dir)
    assert osp.join(work_dir, 'iter_2.pth') in before and any(p.endswith('.log') for p in before)

    fresh = _run('train.py', 'cdcl_cityscapes_bdd', data_cwd, work_dir, check=False)
    assert fresh.returncode != 0
    assert (
        f'FileExistsError: work_dir {work_dir} holds checkpoints of an earlier run '
        '(best_mIoU_iter_2.pth, iter_2.pth): pass --resume'
    ) in fresh.stderr

    diverging = _run(
        'train.py',
        'cdcl_cityscapes_bdd',
        data_cwd,
        work_dir,
        '--resume',
        '--cfg-options',
        'model.loss_weights=[inf,1]',
        check=False,
        max_iters=4,
    )
    assert diverging.returncode != 0
    assert (
        "FloatingPointError: non-finite loss at iteration 3 for dataset(s) ['cityscapes']"
        in diverging.stderr
    )
    after = _files(work_dir)
    assert [p for p, content in before.items() if after.get(p) != content] == []


@pytest.fixture(scope='module')
def trained(trained_cdcl):
    """tests/conftest.py's CDCL Cityscapes + CamVid run of tools/train.py (config.py,
    iter_2.pth), shared with tests/test_tools/test_infer.py."""
    return trained_cdcl


def test_test_tool_evaluates_a_checkpoint_per_dataset(data_cwd, trained, tmp_path):
    result = _run(
        'test.py', 'cdcl_cityscapes_camvid', data_cwd, str(tmp_path), str(trained / 'iter_2.pth')
    )
    assert 'cityscapes/mIoU' in result.stdout and 'camvid/mIoU' in result.stdout


def test_test_tool_with_tta_evaluates_each_dataset_with_its_views(data_cwd, trained, tmp_path):
    """MMSeg's --tta on a CDCL config: each dataset through its own views, scored in its own
    classes."""
    _run(
        'test.py',
        'cdcl_cityscapes_camvid',
        data_cwd,
        str(tmp_path),
        str(trained / 'iter_2.pth'),
        '--tta',
    )
    [log] = glob.glob(osp.join(tmp_path, '*', '*.json'))  # the test's metrics
    with open(log) as f:
        assert {'cityscapes/mIoU', 'camvid/mIoU', 'mIoU'} <= set(json.load(f))
