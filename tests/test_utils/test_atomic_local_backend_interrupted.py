"""A write interrupted (by an error, Ctrl-C, a signal, a kill) leaves the previous file whole."""

import errno
import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmseg_cdcl.utils import AtomicLocalBackend


def _files(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize(
    'failure',
    [OSError(errno.ENOSPC, 'No space left on device'), KeyboardInterrupt()],
    ids=['disk full', 'Ctrl-C'],
)
def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch, failure):
    path = tmp_path / 'last.pth'
    backend = AtomicLocalBackend()
    backend.put(b'previous', path)
    seen = []

    def fail(fd):
        seen.extend(_files(tmp_path))  # the temporary file, written, not renamed yet
        raise failure

    monkeypatch.setattr(os, 'fsync', fail)
    with pytest.raises(type(failure)):
        backend.put(b'new and longer content', path)
    assert len(seen) == 2 and seen[0].startswith('.last.pth.') and seen[0].endswith('.tmp')
    assert path.read_bytes() == b'previous' and _files(tmp_path) == ['last.pth']


def test_a_failed_rename_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'last.pth'
    AtomicLocalBackend().put(b'previous', path)

    def crash(*args):
        raise OSError(errno.EIO, 'Input/output error')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError, match='Input/output error'):
        AtomicLocalBackend().put(b'new', path)
    assert path.read_bytes() == b'previous' and _files(tmp_path) == ['last.pth']


def test_signal_handlers_are_set_only_while_writing(tmp_path, monkeypatch):
    during = []
    fsync = os.fsync

    def record(fd):
        during.append(signal.getsignal(signal.SIGTERM))
        fsync(fd)

    monkeypatch.setattr(os, 'fsync', record)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    AtomicLocalBackend().put(b'x', tmp_path / 'a.pth')
    assert before == (signal.SIG_DFL, signal.SIG_DFL)
    assert during[0] not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before


WRITER = """
import sys, torch
import mmseg_cdcl  # noqa: F401
from mmengine.runner import save_checkpoint
big = torch.ones(50_000_000)  # 200 MB: writing it takes a while
for version in range(1000):
    save_checkpoint(dict(state_dict=dict(version=torch.tensor(version), big=big)), sys.argv[1],
                    backend_args=dict(backend='cdcl_atomic_local'))  # the shipped configs'
    print('saved', version, flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    'signum', [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP], ids=['SIGKILL', 'SIGTERM', 'SIGHUP']
)
def test_a_process_killed_while_saving_leaves_the_previous_checkpoint(tmp_path, signum):
    path = str(tmp_path / 'iter_1000.pth')
    temporaries = str(tmp_path / '.iter_1000.pth.*.tmp')
    writer = subprocess.Popen(
        [sys.executable, '-c', WRITER, path], stdout=subprocess.PIPE, text=True
    )
    while writer.stdout.readline() != 'saved 0\n':  # after mmengine's warnings
        assert writer.poll() is None, 'the writer failed'
    deadline = time.time() + 60
    while not glob.glob(temporaries):  # in the middle of writing version 1
        assert time.time() < deadline and writer.poll() is None
        time.sleep(0.001)
    writer.send_signal(signum)
    assert writer.wait() == -signum
    saved = [0] + [int(line.split()[1]) for line in writer.stdout if line.startswith('saved')]
    checkpoint = torch.load(path)['state_dict']
    # The last version saved, or the next one if the kill came after its rename.
    assert int(checkpoint['version']) in (saved[-1], saved[-1] + 1)
    assert checkpoint['big'].shape == (50_000_000,) and bool((checkpoint['big'] == 1).all())
    if signum != signal.SIGKILL:
        assert not glob.glob(temporaries)  # removed before the process ended
