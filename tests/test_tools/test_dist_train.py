"""Two-process training and evaluation on the CPU (gloo) through tools/dist_*.sh."""

import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.config import Config

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


def _dist_train(config, tmp_path, data_cwd, *cfg_options):
    """tools/dist_train.sh with 2 processes; what each rank trained on and ended with."""
    cfg = shrink_config(Config.fromfile(osp.join(REPO, 'configs', f'{config}.py')), max_iters=3)
    cfg.default_hooks.pop('visualization')
    cfg.custom_imports.imports.append('record_batches_hook')
    cfg.custom_hooks.append(dict(type='RecordBatchesHook', out_dir=str(tmp_path)))
    path = str(tmp_path / 'config.py')
    unformatted(cfg).dump(path)
    options = ['--cfg-options', *cfg_options] if cfg_options else []
    _shell(
        [
            'bash',
            osp.join(REPO, 'tools', 'dist_train.sh'),
            path,
            '2',
            '--work-dir',
            str(tmp_path / 'ddp'),
            *options,
        ],
        data_cwd,
    )
    return path, [json.load(open(tmp_path / f'rank{r}.json')) for r in range(2)]


def test_two_processes_train_disjoint_samples_and_evaluate_as_one(data_cwd, tmp_path):
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
    single = _metrics(
        _shell(
            [
                sys.executable,
                osp.join(tools, 'test.py'),
                config,
                checkpoint,
                '--work-dir',
                str(tmp_path / 'test'),
            ],
            data_cwd,
        )
    )
    assert set(single) == {f'{d}/{m}' for d in ('cityscapes', 'bdd100k') for m in ('mIoU', 'aAcc')}
    assert distributed == single


@pytest.mark.parametrize(
    'config, options, absent',
    [
        ('cdcl_cityscapes_bdd', ['train_cfg.mode=accumulate'], []),
        ('ablations/cdcl_cityscapes_bdd_alternate', [], []),
        ('ablations/cdcl_cityscapes_bdd_interval2', [], [1]),
        ('ablations/cdcl_cityscapes_bdd_interval4', [], [1, 2]),
        ('ablations/cdcl_cityscapes_bdd_shared_bn', [], []),
    ],
    ids=['accumulate', 'alternate', 'interval2', 'interval4', 'shared_bn'],
)
def test_every_dat_mode_and_ablation_trains_in_two_processes(
    config, options, absent, data_cwd, tmp_path
):
    """DDP's reducer waits for every parameter's gradient: iterations without a dataset (its
    branches unused) and per-dataset backwards stopped them at iteration 3."""
    _, ranks = _dist_train(config, tmp_path, data_cwd, *options)
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
