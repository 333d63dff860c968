"""mmengine checkpoints load under torch>=2.6's safe loader where the plugin allows them: within
``mmengine_checkpoints_allowed()`` and a run with ``CheckpointAllowListHook``; every other
``torch.load`` of the process keeps torch's allow-list."""

import json
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch import nn
from torch.utils.data import Dataset

from mmseg_cdcl import mmengine_checkpoints_allowed
from mmseg_cdcl.engine.hooks import CheckpointAllowListHook
from mmseg_cdcl.utils.safe_checkpoint import mmengine_checkpoint_globals


class _Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, x, mode='tensor'):
        out = self.lin(x)
        return dict(loss=(out - 1).pow(2).mean()) if mode == 'loss' else out


class _Data(Dataset):
    metainfo = dict(classes=('road', 'car'), palette=[[128, 64, 128], [0, 0, 142]])

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.tensor([float(i), 1.0]))


def _runner(work_dir, max_iters, resume=False, load_from=None, hooks=(CheckpointAllowListHook,)):
    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        experiment_name=f'toy{max_iters}{resume}_{time.time()}',  # loggers are shared by name
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', seed=0),
            batch_size=2,
            collate_fn=dict(type='default_collate'),
        ),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(type='PolyLR', eta_min=1e-4, power=0.9, by_epoch=False, end=6),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False)),
        custom_hooks=[hook() for hook in hooks],
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
    )


def _globals():
    """What of mmengine's checkpoints torch allows now (torch adds its own, e.g. at the import
    of torch._dynamo)."""
    return set(torch.serialization.get_safe_globals()) & set(mmengine_checkpoint_globals())


@pytest.mark.slow
def test_runner_checkpoint_loads_and_resumes(tmp_path):
    before = _globals()
    _runner(tmp_path, 3).train()
    assert _globals() == before  # allowed for the run's loads only
    ckpt = tmp_path / 'iter_3.pth'
    # The safe default loader refuses mmengine's own checkpoint, mmseg_cdcl imported or not;
    # the process-wide opt-in, by a user's choice, admits it (one fresh interpreter for both).
    script = (
        'import torch, mmseg_cdcl\n'
        'try:\n'
        f'    torch.load({str(ckpt)!r})\n'
        'except Exception as e:\n'
        "    print('refused:', str(e).splitlines()[0])\n"
        'mmseg_cdcl.allow_mmengine_checkpoints()\n'
        f'print(torch.load({str(ckpt)!r})["meta"]["iter"])\n'
    )
    fresh = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    refused, opted_in = fresh.stdout.splitlines()[-2:]
    assert refused.startswith('refused: Weights only load failed')
    assert opted_in == '3'

    model = _Toy()
    with mmengine_checkpoints_allowed():
        saved = load_checkpoint(model, str(ckpt))
    assert saved['meta']['iter'] == 3
    assert saved['message_hub']['log_scalars']['train/loss'].current() > 0
    torch.testing.assert_close(model.lin.weight, saved['state_dict']['lin.weight'])

    resumed = _runner(tmp_path, 6, resume=True)
    resumed.train()
    assert resumed.iter == 6 and _globals() == before
    uninterrupted = _runner(tmp_path / 'full', 6)
    uninterrupted.train()
    torch.testing.assert_close(resumed.model.lin.weight, uninterrupted.model.lin.weight)


def test_load_from(tmp_path):
    _runner(tmp_path, 3).train()
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        _runner(tmp_path / 'stock', 3, load_from=str(tmp_path / 'iter_3.pth'), hooks=()).train()
    runner = _runner(tmp_path / 'next', 3, load_from=str(tmp_path / 'iter_3.pth'))
    with mmengine_checkpoints_allowed():
        runner.load_or_resume()
        saved = torch.load(tmp_path / 'iter_3.pth')  # the safe default loader, allow-listed
    torch.testing.assert_close(runner.model.lin.weight, saved['state_dict']['lin.weight'])
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(tmp_path / 'iter_3.pth')  # outside: torch's own allow-list


class _Seen(Hook):
    """Whether mmengine's types are allowed at each stage, and a failure in the loop."""

    def __init__(self, fail=False):
        self.seen, self.fail = {}, fail

    def _see(self, stage):
        self.seen[stage] = HistoryBuffer in torch.serialization.get_safe_globals()

    def before_run(self, runner):
        self._see('before_run')

    def before_train(self, runner):
        self._see('before_train')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.fail:
            raise RuntimeError('the loop fails')

    def after_run(self, runner):
        self._see('after_run')


def test_the_hook_allows_from_before_run_to_the_loop_and_restores_what_was_allowed(tmp_path):
    """The hook adds what torch's allow-list lacks, and leaves what the process had allowed
    itself (numpy's dtype here) allowed, also where the loop fails."""
    with torch.serialization.safe_globals([np.dtype]):  # the process's own
        before = _globals()
        assert before == {np.dtype}
        seen = _Seen()
        runner = _runner(tmp_path, 3)
        runner.register_hook(seen, 'LOW')
        runner.train()
        assert seen.seen == dict(before_run=True, before_train=False, after_run=False)
        assert _globals() == before
        failing = _runner(tmp_path / 'fails', 3)
        failing.register_hook(_Seen(fail=True), 'LOW')
        with pytest.raises(RuntimeError, match='the loop fails'):
            failing.train()
        assert _globals() == before
        with mmengine_checkpoints_allowed():
            assert HistoryBuffer in torch.serialization.get_safe_globals()
        assert _globals() == before


class _Payload:
    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    payload = _Payload()
    payload.marker = marker
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=dict(), meta=dict(hook=payload)), path)
    with pytest.raises(pickle.UnpicklingError, match=r'GLOBAL posix.system'):
        with mmengine_checkpoints_allowed():
            load_checkpoint(_Toy(), str(path))
    assert not marker.exists()


@pytest.mark.parametrize(
    'owner, name',
    [('HistoryBuffer', '__init__'), ('HistoryBuffer', 'update'), ('ndarray', 'tofile')],
)
def test_getattr_is_limited_to_history_buffer_statistics(tmp_path, owner, name):
    """mmengine pickles HistoryBuffer.min & co. with getattr: nothing else is served."""
    cls = dict(HistoryBuffer=HistoryBuffer, ndarray=np.ndarray)[owner]

    class _Getattr:
        def __reduce__(self):
            return (getattr, (cls, name))

    path = tmp_path / 'evil_getattr.pth'
    torch.save(dict(meta=_Getattr()), path)
    with pytest.raises(
        pickle.UnpicklingError,
        match=rf'refusing getattr\(<class '
        rf"'[\w.]*{owner}'>, '{name}'\)",
    ):
        with mmengine_checkpoints_allowed():
            torch.load(path)


STATISTICS = """
from mmengine.logging import HistoryBuffer


@HistoryBuffer.register_statistics
def last_two_mean(self):
    return self._log_history[-2:].mean()


def not_a_statistic(*args):
    raise AssertionError('a load must not reach this')
"""

TRAIN = """
import argparse, json, pickle
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

parser = argparse.ArgumentParser()
parser.add_argument('--max-iters', type=int)
parser.add_argument('--resume', action='store_true')
parser.add_argument('--statistics-first', action='store_true')
args = parser.parse_args()
if args.statistics_first:  # registered before mmseg_cdcl is imported
    import my_stats
    import mmseg_cdcl
else:  # registered after
    import mmseg_cdcl
    import my_stats
from mmseg_cdcl import mmengine_checkpoints_allowed
from mmseg_cdcl.utils.safe_checkpoint import mmengine_checkpoint_globals
from mmseg_cdcl.engine.hooks import CheckpointAllowListHook


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, x, mode='tensor'):
        out = self.lin(x)
        return dict(loss=(out - 1).pow(2).mean()) if mode == 'loss' else out


class Data(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.tensor([float(i), 1.0]))


torch.manual_seed(0)
runner = Runner(
    model=Toy(), work_dir='work', resume=args.resume,
    train_dataloader=dict(dataset=Data(), sampler=dict(type='DefaultSampler', seed=0),
                          batch_size=2, collate_fn=dict(type='default_collate')),
    train_cfg=dict(by_epoch=False, max_iters=args.max_iters),
    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
    default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False)),
    custom_hooks=[CheckpointAllowListHook()], randomness=dict(seed=0))
runner.train()
loss = runner.message_hub.get_scalar('train/loss')
with mmengine_checkpoints_allowed():
    saved = torch.load(f'work/iter_{args.max_iters}.pth')  # in this order of imports too
torch.save(dict(meta=dict(hook=my_stats.not_a_statistic)), 'other_function.pth')
try:
    with mmengine_checkpoints_allowed():
        torch.load('other_function.pth')
    refused = None
except pickle.UnpicklingError as error:
    refused = str(error)
print(json.dumps(dict(iter=runner.iter, saved_iter=saved['meta']['iter'],
                      losses=loss.data[0].tolist(),
                      last_two_mean=float(loss.statistics('last_two_mean')), refused=refused)))
"""


def _train(folder, *args):
    done = subprocess.run(
        [sys.executable, 'train.py', *args], cwd=folder, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_a_registered_statistic_is_admitted_and_resumes(tmp_path):
    """mmengine's HistoryBuffer.register_statistics puts the function into every checkpoint."""
    (tmp_path / 'my_stats.py').write_text(STATISTICS)
    (tmp_path / 'train.py').write_text(TRAIN)
    first = _train(tmp_path, '--max-iters', '3')
    checkpoint = str(tmp_path / 'work' / 'iter_3.pth')
    assert 'my_stats.last_two_mean' in torch.serialization.get_unsafe_globals_in_checkpoint(
        checkpoint
    )
    # Not registered in this process: refused, named.
    with pytest.raises(pickle.UnpicklingError, match=r'GLOBAL my_stats\.last_two_mean'):
        with mmengine_checkpoints_allowed():
            torch.load(checkpoint)

    resumed = _train(tmp_path, '--max-iters', '6', '--resume', '--statistics-first')
    assert (first['iter'], first['saved_iter'], resumed['iter'], resumed['saved_iter']) == (
        3,
        3,
        6,
        6,
    )
    assert len(resumed['losses']) == 6 and resumed['losses'][:3] == first['losses']
    assert resumed['last_two_mean'] == pytest.approx(sum(resumed['losses'][-2:]) / 2)
    for run in (first, resumed):  # another function of the same module: refused, named
        assert 'Unsupported global: GLOBAL my_stats.not_a_statistic' in run['refused']


def test_stock_init_model_of_a_runners_checkpoint_and_the_two_ways_out(trained_cdcl):
    """Stock ``init_model`` refuses any checkpoint mmengine's Runner wrote, as stock mmseg on
    torch >= 2.6 does; ``init_cdcl_model``, or ``init_model`` within
    ``mmengine_checkpoints_allowed()``, loads it, with ``weights_only`` left on."""
    from mmseg.apis import init_model

    from mmseg_cdcl.apis import init_cdcl_model

    config, checkpoint = str(trained_cdcl / 'config.py'), str(trained_cdcl / 'iter_2.pth')
    with pytest.raises(pickle.UnpicklingError, match='GLOBAL mmengine.logging.history_buffer'):
        init_model(config, checkpoint, device='cpu')
    with mmengine_checkpoints_allowed():
        stock = init_model(config, checkpoint, device='cpu')
        saved = torch.load(checkpoint)['state_dict']
    cdcl = init_cdcl_model(config, checkpoint, 'camvid')
    assert _globals() == set()
    for model in (stock, cdcl):
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, saved[key], rtol=0, atol=0, msg=key)
