"""Two-process training and evaluation on the CPU (gloo) through tools/dist_*.sh."""

import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO, shrink_config
from mmseg_cdcl.testing import unformatted

# Each test trains or runs a tool in a fresh interpreter.
pytestmark = pytest.mark.slow
# A port of its own for each pytest-xdist worker (make test runs two: gw0, gw1).
PORT = str(29533 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:]))


def _shell(command, cwd):
    env = dict(
        os.environ,
        PATH=f'{osp.dirname(sys.executable)}:{os.environ["PATH"]}',
        PYTHONPATH=osp.join(REPO, 'tests', 'helpers'),
        PORT=PORT,
    )
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _metrics(output):
    line = [line for line in output.splitlines() if 'Iter(test)' in line and 'mIoU' in line][-1]
    return dict(re.findall(r'(\S+/mIoU|\S+/aAcc): ([\d.]+)', line))


def _config(config, out_dir, name, *cfg_options):
    """The config at test size as ``out_dir/name.py``, recording what each rank trains on into
    ``out_dir`` (a name of its own: mmengine's logger and visualizer of each run, when several
    run in one process)."""
    cfg = shrink_config(Config.fromfile(osp.join(REPO, 'configs', f'{config}.py')), max_iters=3)
    cfg.default_hooks.pop('visualization')
    cfg.custom_imports.imports.append('record_batches_hook')
    cfg.custom_hooks.append(dict(type='RecordBatchesHook', out_dir=str(out_dir)))
    cfg.merge_from_dict(dict(option.split('=', 1) for option in cfg_options))
    path = str(out_dir / f'{name}.py')
    unformatted(cfg).dump(path)
    return path


def _ranks(out_dir):
    return [json.load(open(out_dir / f'rank{r}.json')) for r in range(2)]


def _dist_train(config, tmp_path, data_cwd):
    """tools/dist_train.sh with 2 processes; what each rank trained on and ended with."""
    path = _config(config, tmp_path, 'config')
    work_dir = str(tmp_path / 'ddp')
    _shell(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), path, '2', '--work-dir', work_dir],
        data_cwd,
    )
    return path, _ranks(tmp_path)


def test_two_processes_train_disjoint_samples_and_evaluate_as_one(data_cwd, tmp_path, monkeypatch):
    config, ranks = _dist_train('cdcl_cityscapes_bdd', tmp_path, data_cwd)
    tools = osp.join(REPO, 'tools')
    paths = [ranks[r]['batches'][0] for r in range(2)]  # first pass of each dataset's 6
    assert len(paths[0]) == len(paths[1]) == 4  # 2 + 2 per rank
    assert not set(paths[0]) & set(paths[1])  # disjoint samples
    assert ranks[0]['losses'] != ranks[1]['losses']  # each rank its own data...
    assert ranks[0]['weights'] == ranks[1]['weights']  # ...and the same averaged update

    checkpoint = str(tmp_path / 'ddp' / 'iter_3.pth')
    distributed = _metrics(
        _shell(
            [
                'bash',
                osp.join(tools, 'dist_test.sh'),
                config,
                checkpoint,
                '2',
                '--work-dir',
                str(tmp_path / 'dist_test'),
            ],
            data_cwd,
        )
    )
    # In one process, as tools/test.py runs it (mmengine's Runner; the command itself runs in
    # tests/test_tools/test_train.py).
    monkeypatch.chdir(data_cwd)
    cfg = Config.fromfile(config, import_custom_modules=False)
    cfg.merge_from_dict(dict(work_dir=str(tmp_path / 'test'), load_from=checkpoint))
    cfg.custom_imports.imports.remove('record_batches_hook')  # a test hook of the training
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h.type != 'RecordBatchesHook']
    cfg.experiment_name = cfg.visualizer.name = f'single_{time.time_ns()}'
    metrics = Runner.from_cfg(cfg).test()  # rounded to 2 decimals, as float32
    single = {k: round(float(v), 2) for k, v in metrics.items() if k in distributed}
    distributed = {k: float(v) for k, v in distributed.items()}
    assert set(single) == {f'{d}/{m}' for d in ('cityscapes', 'bdd100k') for m in ('mIoU', 'aAcc')}
    assert distributed == single


MODES = {  # DAT mode or ablation: its config, options and the iterations without BDD100K
    'accumulate': ('cdcl_cityscapes_bdd', ['train_cfg.mode=accumulate'], []),
    'alternate': ('ablations/cdcl_cityscapes_bdd_alternate', [], []),
    # interval t: t=4 leaves BDD100K out of two iterations in a row (t=2, one; the same
    # mechanism, trained in one process by tests/test_tools/test_train.py)
    'interval4': ('ablations/cdcl_cityscapes_bdd_interval4', [], [1, 2]),
    'shared_bn': ('ablations/cdcl_cityscapes_bdd_shared_bn', [], []),
}


@pytest.fixture(scope='module')
def modes_trained(data_cwd, tmp_path_factory):
    """Each mode trained as tools/dist_train.sh trains it (tools/train.py, 2 processes), all in
    one launch (tests/helpers/train_each.py); what each rank of each trained on."""
    root = tmp_path_factory.mktemp('modes')
    runs = []
    for mode, (config, options, _) in MODES.items():
        (root / mode).mkdir()
        runs += [_config(config, root / mode, mode, *options), str(root / mode / 'ddp')]
    _shell(
        [
            'torchrun',
            '--nproc_per_node=2',
            f'--master_port={PORT}',
            osp.join(REPO, 'tests', 'helpers', 'train_each.py'),
            *runs,
        ],
        data_cwd,
    )
    return {mode: _ranks(root / mode) for mode in MODES}


@pytest.mark.parametrize('mode', MODES)
def test_every_dat_mode_and_ablation_trains_in_two_processes(mode, modes_trained):
    """DDP's reducer waits for every parameter's gradient: iterations without a dataset (its
    branches unused) and per-dataset backwards stopped them at iteration 3."""
    ranks, absent = modes_trained[mode], MODES[mode][2]
    assert len(ranks[0]['losses']) == len(ranks[1]['losses']) == 3
    assert ranks[0]['weights'] == ranks[1]['weights']  # gradients averaged over the ranks
    assert ranks[0]['classifiers'] == ranks[1]['classifiers']
    assert all(
        len(batch) == 4 if i not in absent else len(batch) == 2
        for r in ranks
        for i, batch in enumerate(r['batches'])
    )
    # An iteration without BDD100K (its DSBN branches and classifier '1' unused) leaves its
    # classifier as it was, as in one process: no gradient, no momentum, no weight decay.
    classifiers = ranks[0]['classifiers']
    for i in absent:
        assert classifiers[i]['1'] == classifiers[i - 1]['1']
        assert classifiers[i]['0'] != classifiers[i - 1]['0']
