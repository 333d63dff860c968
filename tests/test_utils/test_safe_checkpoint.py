"""mmengine checkpoints load under torch>=2.6's safe loader once mmseg_cdcl is imported."""

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch import nn
from torch.utils.data import Dataset


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


def _runner(work_dir, max_iters, resume=False, load_from=None):
    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        experiment_name=f'toy{max_iters}{resume}',
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
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
    )


@pytest.mark.slow
def test_runner_checkpoint_loads_and_resumes(tmp_path):
    _runner(tmp_path, 3).train()
    ckpt = tmp_path / 'iter_3.pth'
    # Without mmseg_cdcl the safe default loader refuses mmengine's own checkpoint.
    stock = subprocess.run(
        [sys.executable, '-c', f'import torch; torch.load({str(ckpt)!r})'],
        capture_output=True,
        text=True,
    )
    assert stock.returncode != 0 and 'Weights only load failed' in stock.stderr

    model = _Toy()
    saved = load_checkpoint(model, str(ckpt))
    assert saved['meta']['iter'] == 3
    assert saved['message_hub']['log_scalars']['train/loss'].current() > 0
    torch.testing.assert_close(model.lin.weight, saved['state_dict']['lin.weight'])

    resumed = _runner(tmp_path, 6, resume=True)
    resumed.train()
    assert resumed.iter == 6
    uninterrupted = _runner(tmp_path / 'full', 6)
    uninterrupted.train()
    torch.testing.assert_close(resumed.model.lin.weight, uninterrupted.model.lin.weight)


def test_load_from(tmp_path):
    _runner(tmp_path, 3).train()
    runner = _runner(tmp_path / 'next', 3, load_from=str(tmp_path / 'iter_3.pth'))
    runner.load_or_resume()
    saved = torch.load(tmp_path / 'iter_3.pth')  # the safe default loader, allow-listed
    torch.testing.assert_close(runner.model.lin.weight, saved['state_dict']['lin.weight'])


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
        load_checkpoint(_Toy(), str(path))
    assert not marker.exists()


@pytest.mark.parametrize(
    'owner, name',
    [('HistoryBuffer', '__init__'), ('HistoryBuffer', 'update'), ('ndarray', 'tofile')],
)
def test_getattr_is_limited_to_history_buffer_statistics(tmp_path, owner, name):
    """mmengine pickles HistoryBuffer.min & co. with getattr: nothing else is served."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

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
    randomness=dict(seed=0))
runner.train()
loss = runner.message_hub.get_scalar('train/loss')
saved = torch.load(f'work/iter_{args.max_iters}.pth')  # in this order of imports too
torch.save(dict(meta=dict(hook=my_stats.not_a_statistic)), 'other_function.pth')
try:
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
