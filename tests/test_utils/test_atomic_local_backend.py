"""Checkpoints are written whole or not at all."""
import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner import save_checkpoint

from mmseg_cdcl.utils import AtomicLocalBackend


def test_mmengine_writes_local_files_through_it(tmp_path):
    path = tmp_path / 'sub' / 'iter_2.pth'
    assert isinstance(get_file_backend(str(path)), AtomicLocalBackend)
    save_checkpoint(dict(state_dict=dict(w=torch.arange(3.))), str(path))
    assert torch.load(path)['state_dict']['w'].tolist() == [0., 1., 2.]
    assert os.listdir(path.parent) == ['iter_2.pth']  # no temporary file left


def test_a_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / 'last.pth'
    backend = AtomicLocalBackend()
    backend.put(b'previous', str(path))

    def crash(*args):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError, match='disk full'):
        backend.put(b'new and longer content', str(path))
    assert path.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['last.pth']


WRITER = textwrap.dedent('''
    import sys, torch
    import mmseg_cdcl  # noqa: F401
    from mmengine.runner import save_checkpoint
    save_checkpoint(dict(state_dict=dict(version=torch.tensor(0))), sys.argv[1])
    print('ready', flush=True)
    big = torch.ones(50_000_000)  # 200 MB: writing it takes a while
    for version in range(1, 1000):
        save_checkpoint(dict(state_dict=dict(version=torch.tensor(version), big=big)),
                        sys.argv[1])
''')


def test_kill_while_saving_never_leaves_a_truncated_checkpoint(tmp_path):
    path = str(tmp_path / 'iter_1000.pth')
    for attempt in range(2):
        writer = subprocess.Popen([sys.executable, '-c', WRITER, path], stdout=subprocess.PIPE,
                                  text=True)
        while writer.stdout.readline() != 'ready\n':  # after mmengine's warnings
            assert writer.poll() is None
        deadline = time.time() + 60
        while not glob.glob(str(tmp_path / '.iter_1000.pth.*.tmp')):  # mid-write
            assert time.time() < deadline and writer.poll() is None
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        checkpoint = torch.load(path)  # whole: the previous version or the new one
        assert 'version' in checkpoint['state_dict']
        for leftover in glob.glob(str(tmp_path / '.iter_1000.pth.*.tmp')):
            os.remove(leftover)  # what the killed writer could not rename
