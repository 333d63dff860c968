"""A run killed with SIGKILL and resumed with tools/train.py --resume repeats the uninterrupted
run: per-iteration losses and final weights."""

import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from conftest import REPO, shrink_config
from mmseg_cdcl import mmengine_checkpoints_allowed
from mmseg_cdcl.testing import unformatted

# Each test trains or runs a tool in a fresh interpreter.
pytestmark = pytest.mark.slow

ITERS = 8


def _config(work_dir):
    cfg = shrink_config(
        Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_bdd.py')), max_iters=ITERS
    )
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.train_dataloader.update(num_workers=2)  # augmentations must not depend on workers
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=-1, save_best=None)
    cfg.default_hooks.pop('visualization')
    cfg.log_processor = dict(by_epoch=False, window_size=1)  # each iteration's own loss
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'config.py')
    unformatted(cfg).dump(path)
    return path


def _train(work_dir, data_cwd, *args):
    """tools/train.py in a subprocess, its output in <work_dir>/output<n>.txt."""
    config = _config(work_dir)
    output = open(osp.join(work_dir, f'output{len(glob.glob(work_dir + "/output*"))}.txt'), 'w')
    return subprocess.Popen(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'train.py'),
            config,
            '--work-dir',
            work_dir,
            *args,
        ],
        cwd=data_cwd,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def _losses(work_dir):
    losses = {}
    for scalars in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(scalars) as f:
            for line in map(json.loads, f):
                if 'loss' in line:
                    losses[line['step']] = line
    return losses


def _weights(path):
    with mmengine_checkpoints_allowed():
        return torch.load(path)['state_dict']


def test_killed_and_resumed_run_repeats_the_uninterrupted_one(data_cwd, tmp_path):
    full = str(tmp_path / 'full')
    assert _train(full, data_cwd).wait() == 0

    killed = str(tmp_path / 'killed')
    process = _train(killed, data_cwd)
    last = osp.join(killed, 'last_checkpoint')
    deadline = time.time() + 300
    while not (osp.exists(last) and open(last).read().endswith('iter_4.pth')):
        assert process.poll() is None and time.time() < deadline, 'run ended before the kill'
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not osp.exists(osp.join(killed, f'iter_{ITERS}.pth'))

    returncode = _train(killed, data_cwd, '--resume').wait()
    output = open(osp.join(killed, 'output1.txt')).read()
    assert returncode == 0, output[-3000:]
    assert 'resumed epoch: 0, iter: 4' in output

    expected, got = _losses(full), _losses(killed)
    assert sorted(expected) == list(range(1, ITERS + 1))
    for step in range(5, ITERS + 1):
        for key in ('loss', 'cityscapes.decode.loss_ce', 'bdd100k.aux.loss_ce', 'lr'):
            assert got[step][key] == pytest.approx(expected[step][key], rel=1e-5, abs=1e-7), (
                step,
                key,
            )
    final, reference = (
        _weights(osp.join(killed, f'iter_{ITERS}.pth')),
        _weights(osp.join(full, f'iter_{ITERS}.pth')),
    )
    for key, value in reference.items():
        torch.testing.assert_close(final[key], value, rtol=1e-5, atol=1e-6)
