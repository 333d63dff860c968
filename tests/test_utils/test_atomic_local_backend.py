"""A write keeps what stock mmengine's write does: mode, owner, links, special files, names."""

import errno
import json
import os
import os.path as osp
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import mmengine
import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import get_file_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.runner import Runner, save_checkpoint
from mmengine.testing.runner_test_case import ToyDataset, ToyModel

from conftest import REPO
from mmseg_cdcl.utils import AtomicLocalBackend, mmengine_checkpoints_allowed

root_only = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (mknod, chown)')


def _files(folder):
    return sorted(os.listdir(folder))


ATOMIC = dict(backend='cdcl_atomic_local')


def test_mmengine_writes_through_it_where_backend_args_name_it(tmp_path):
    path = tmp_path / 'sub' / 'iter_2.pth'
    assert type(get_file_backend(str(path))) is LocalBackend  # every other write: stock
    assert isinstance(get_file_backend(str(path), backend_args=ATOMIC), AtomicLocalBackend)
    save_checkpoint(dict(state_dict=dict(w=torch.arange(3.0))), str(path), backend_args=ATOMIC)
    assert torch.load(path)['state_dict']['w'].tolist() == [0.0, 1.0, 2.0]
    assert _files(path.parent) == ['iter_2.pth']  # no temporary file left


def _run(work_dir, checkpoint):
    Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(), batch_size=3, sampler=dict(type='DefaultSampler', seed=0)
        ),
        train_cfg=dict(by_epoch=False, max_iters=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=checkpoint),
        default_scope='mmengine',
        experiment_name=f'atomic_{time.time()}',
    ).train()


def test_a_run_with_the_shipped_configs_checkpoint_hook_writes_checkpoints_through_it(tmp_path):
    """A hard link to a checkpoint the run replaces keeps its content where the write is a
    rename (atomic), and gets the new one where it is written in place (stock)."""
    shipped = Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_bdd.py'))
    checkpoint = shipped.default_hooks.checkpoint
    assert checkpoint.backend_args == ATOMIC
    checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=False, backend_args=ATOMIC)
    for name, hook in (('atomic', checkpoint), ('stock', dict(checkpoint, backend_args=None))):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'iter_1.pth').write_bytes(b'previous')
        os.link(tmp_path / name / 'iter_1.pth', tmp_path / f'{name}_link.pth')
        _run(tmp_path / name, hook)
        with mmengine_checkpoints_allowed():
            assert torch.load(tmp_path / name / 'iter_1.pth')['meta']['iter'] == 1
    assert (tmp_path / 'atomic_link.pth').read_bytes() == b'previous'
    assert (tmp_path / 'stock_link.pth').read_bytes() != b'previous'


def test_use_atomic_local_writes_makes_it_every_local_writes_backend_by_a_users_choice():
    done = subprocess.run(
        [
            sys.executable,
            '-c',
            'from mmengine.fileio import get_file_backend as get; import mmseg_cdcl; '
            'print(type(get("a.pth")).__name__); '
            'mmseg_cdcl.utils.use_atomic_local_writes(); print(type(get("a.pth")).__name__)',
        ],
        capture_output=True,
        text=True,
    )
    assert done.stdout.split() == ['LocalBackend', 'AtomicLocalBackend'], done.stderr[-2000:]


@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077], ids=oct)
def test_a_new_file_has_the_mode_of_a_stock_write(tmp_path, umask):
    previous = os.umask(umask)
    try:
        AtomicLocalBackend().put(b'x', tmp_path / 'iter_1.pth')
        mmengine.dump(dict(a=1), str(tmp_path / 'results.json'), backend_args=ATOMIC)  # put_text
        LocalBackend().put(b'x', tmp_path / 'stock.pth')
    finally:
        os.umask(previous)
    for name in ('iter_1.pth', 'results.json', 'stock.pth'):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name


@pytest.mark.parametrize('mode', [0o664, 0o600, 0o4754], ids=oct)
def test_an_existing_file_keeps_its_mode_and_extended_attributes(tmp_path, mode):
    path = tmp_path / 'last.pth'
    path.write_bytes(b'previous')
    os.chmod(path, mode)
    os.setxattr(path, 'user.team', b'seg')
    AtomicLocalBackend().put(b'new', path)
    assert path.read_bytes() == b'new'
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert os.getxattr(path, 'user.team') == b'seg'


@root_only
def test_an_existing_file_keeps_its_owner_and_group(tmp_path):
    path = tmp_path / 'iter_3.pth'
    path.write_bytes(b'previous')
    os.chown(path, 1234, 5678)
    os.chmod(path, 0o6754)  # chown clears set-ID bits: they must be set after it
    AtomicLocalBackend().put_text('new', path)
    info = os.stat(path)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1234, 5678, 0o6754)


def test_a_write_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    disk = tmp_path / 'big_disk' / 'run1'
    disk.mkdir(parents=True)
    (disk / 'iter_3.pth').write_bytes(b'previous')
    os.chmod(disk / 'iter_3.pth', 0o640)
    (tmp_path / 'work_dirs').symlink_to(disk)  # work_dirs -> big_disk/run1
    (disk / 'latest.pth').symlink_to('iter_3.pth')  # latest.pth -> iter_3.pth
    AtomicLocalBackend().put(b'new', tmp_path / 'work_dirs' / 'latest.pth')
    assert os.readlink(disk / 'latest.pth') == 'iter_3.pth'
    assert os.readlink(tmp_path / 'work_dirs') == str(disk)
    assert (disk / 'iter_3.pth').read_bytes() == b'new'
    assert stat.S_IMODE(os.stat(disk / 'iter_3.pth').st_mode) == 0o640
    assert _files(disk) == ['iter_3.pth', 'latest.pth']


def test_a_dangling_symlink_gets_its_target_created(tmp_path):
    (tmp_path / 'latest.pth').symlink_to('iter_9.pth')
    AtomicLocalBackend().put(b'new', tmp_path / 'latest.pth')
    assert os.readlink(tmp_path / 'latest.pth') == 'iter_9.pth'
    assert (tmp_path / 'iter_9.pth').read_bytes() == b'new'


def test_a_symlink_loop_fails_as_in_stock_mmengine(tmp_path):
    (tmp_path / 'a').symlink_to('b')
    (tmp_path / 'b').symlink_to('a')
    with pytest.raises(OSError) as stock:
        LocalBackend().put(b'new', tmp_path / 'a')
    with pytest.raises(OSError) as atomic:
        AtomicLocalBackend().put(b'new', tmp_path / 'a')
    assert atomic.value.errno == stock.value.errno == errno.ELOOP
    assert [os.readlink(tmp_path / n) for n in ('a', 'b')] == ['b', 'a']


def test_a_hard_link_keeps_the_previous_content(tmp_path):
    """Documented choice: the written name is replaced (atomically); other names keep the
    previous file, as a ``cp -al`` snapshot should."""
    (tmp_path / 'iter_3.pth').write_bytes(b'previous')
    os.link(tmp_path / 'iter_3.pth', tmp_path / 'snapshot.pth')
    AtomicLocalBackend().put(b'new', tmp_path / 'iter_3.pth')
    assert (tmp_path / 'iter_3.pth').read_bytes() == b'new'
    assert (tmp_path / 'snapshot.pth').read_bytes() == b'previous'
    assert os.stat(tmp_path / 'snapshot.pth').st_nlink == 1


@root_only
def test_a_device_node_is_written_to_and_kept(tmp_path):
    null = tmp_path / 'null'
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # as /dev/null
    AtomicLocalBackend().put(b'discarded', null)
    AtomicLocalBackend().put_text('discarded', null)
    info = os.lstat(null)
    assert stat.S_ISCHR(info.st_mode) and os.major(info.st_rdev) == 1
    assert os.minor(info.st_rdev) == 3 and _files(tmp_path) == ['null']


def test_a_fifo_is_written_to_and_kept(tmp_path):
    fifo = tmp_path / 'pipe'
    os.mkfifo(fifo)
    received = []
    # A FIFO write waits for a reader (daemon: a replaced FIFO would leave it waiting).
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    AtomicLocalBackend().put(b'through the pipe', fifo)
    reader.join(timeout=10)
    assert received == [b'through the pipe']
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and _files(tmp_path) == ['pipe']


def test_a_socket_path_fails_as_in_stock_mmengine_and_is_kept(tmp_path):
    path = tmp_path / 'sock'
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(OSError) as stock:
            LocalBackend().put(b'x', path)
        with pytest.raises(OSError) as atomic:
            AtomicLocalBackend().put(b'x', path)
    assert atomic.value.errno == stock.value.errno == errno.ENXIO
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.mark.parametrize(
    'name', ['i' * 250, 'i' * 255, 'é' * 127], ids=['250 chars', 'NAME_MAX', '254 bytes of UTF-8']
)
def test_names_up_to_the_file_system_limit_are_written(tmp_path, name):
    assert len(os.fsencode(name)) <= os.pathconf(tmp_path, 'PC_NAME_MAX') == 255
    AtomicLocalBackend().put(b'previous', tmp_path / name)
    AtomicLocalBackend().put(b'new', tmp_path / name)
    assert (tmp_path / name).read_bytes() == b'new' and _files(tmp_path) == [name]


def test_a_file_that_cannot_be_replaced_is_written_in_place_with_a_warning(tmp_path, monkeypatch):
    """As a bind-mounted file (EBUSY on rename) or another user's file in a sticky folder."""
    path = tmp_path / 'mounted.pth'
    path.write_bytes(b'previous')
    inode = os.stat(path).st_ino

    def busy(*args):
        raise OSError(errno.EBUSY, 'Device or resource busy')

    monkeypatch.setattr(os, 'replace', busy)
    with pytest.warns(UserWarning, match=r'mounted\.pth is written in place, not atomically'):
        AtomicLocalBackend().put(b'new', path)
    assert path.read_bytes() == b'new' and os.stat(path).st_ino == inode
    assert _files(tmp_path) == ['mounted.pth']


def _as_nobody(folder, names):
    """Write b'new' to each of ``names`` in ``folder`` through both backends as user nobody
    (65534), in a forked child: what each then holds or the error raised, the number of
    warnings, the files of its folder."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        results = []
        try:
            os.setgid(65534)
            os.setuid(65534)
            for name in names:
                for backend in (LocalBackend(), AtomicLocalBackend()):
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter('always')
                        try:
                            backend.put(b'new', folder / name)
                            got = (folder / name).read_bytes().decode()
                        except OSError as error:
                            got = errno.errorcode[error.errno]
                    results.append(
                        [
                            type(backend).__name__,
                            name,
                            got,
                            len(caught),
                            sorted(os.listdir((folder / name).parent)),
                        ]
                    )
                    if got == 'new':  # for the next backend
                        (folder / name).write_bytes(b'previous')
        except BaseException as error:
            results.append(repr(error))
        finally:
            os.write(write, json.dumps(results).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        results = json.loads(f.read())
    os.waitpid(child, 0)
    return results


@root_only
def test_as_another_user_files_are_refused_or_written_in_place_as_stock_mmengine_does():
    tmp_path = Path(tempfile.mkdtemp())  # pytest's tmp_path is closed to other users
    os.chmod(tmp_path, 0o755)
    for folder, mode in (('locked', 0o555), ('sticky', 0o1777)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / 'f.pth').write_bytes(b'previous')
        os.chmod(tmp_path / folder / 'f.pth', 0o666)  # writable by all, owned by root
        os.chmod(tmp_path / folder, mode)
    (tmp_path / 'open').mkdir()
    (tmp_path / 'open' / 'read_only.pth').write_bytes(b'previous')
    os.chmod(tmp_path / 'open' / 'read_only.pth', 0o444)
    os.chmod(tmp_path / 'open', 0o777)  # a rename could replace the file: it must not
    try:
        results = _as_nobody(tmp_path, ['open/read_only.pth', 'locked/f.pth', 'sticky/f.pth'])
    finally:
        shutil.rmtree(tmp_path)
    assert results == [
        ['LocalBackend', 'open/read_only.pth', 'EACCES', 0, ['read_only.pth']],
        ['AtomicLocalBackend', 'open/read_only.pth', 'EACCES', 0, ['read_only.pth']],
        # No temporary file can be made in the folder, or renamed over another user's file:
        # written in place, with a warning.
        ['LocalBackend', 'locked/f.pth', 'new', 0, ['f.pth']],
        ['AtomicLocalBackend', 'locked/f.pth', 'new', 1, ['f.pth']],
        ['LocalBackend', 'sticky/f.pth', 'new', 0, ['f.pth']],
        ['AtomicLocalBackend', 'sticky/f.pth', 'new', 1, ['f.pth']],
    ]
