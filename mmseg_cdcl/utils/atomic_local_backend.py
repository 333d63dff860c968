"""mmengine's local file backend, with writes that a killed process cannot leave half done.

A checkpoint is written to a temporary file in its target's folder, flushed to disk and renamed
over the target, so that a process killed while saving (SIGKILL, the OOM killer, a preempted
job) leaves the previous file or the new one, never a truncated one that ``--resume`` would
pick up. Apart from that, a write looks as stock mmengine's ``open(filepath, 'wb').write(obj)``:

- mode: an existing file's mode, owner and group (where the process may set them) and extended
  attributes (ACLs) are kept; a new file gets ``0o666 & ~umask`` (and the folder's default ACL);
- a file the process may not write (read-only, immutable) is refused with stock's error,
  even where its folder would let it be replaced;
- symbolic links: the file a link resolves to is replaced, the link is left as it is;
- devices, FIFOs, sockets and links that do not resolve are written as stock mmengine writes
  them; so are, with a warning, existing files that cannot be replaced (no write permission on
  their folder, a bind-mounted file, another user's file in a sticky folder);
- names up to the file system's ``NAME_MAX`` work: the temporary name never exceeds it;
- the temporary file is removed on any error, on KeyboardInterrupt and, while the main thread
  writes, on SIGTERM and SIGHUP (after which the process dies by that signal as it would have);
  after SIGKILL or a power loss a hidden ``.<name>.<8 hex>.tmp`` may remain.

What differs: a replaced file is a new inode, so a file with several hard links is replaced at
the written name only and the other names keep the previous content (writing in place would
give up atomicity; a ``cp -al`` snapshot keeps its copy); a write costs one ``fsync``; a write
that cannot start (disk full when creating the temporary file) leaves the previous file where
stock mmengine would have truncated it.

Scope: the writes that name it, registered as mmengine's file backend ``'cdcl_atomic_local'``
(``backend_args=dict(backend='cdcl_atomic_local')``): the shipped configs' and
``convert_config``'s ``CheckpointHook``, hence a CDCL run's checkpoints. Every other write of
the process goes through mmengine's ``'local'`` backend as it is. :func:`use_atomic_local_writes`
makes it mmengine's backend for every local path of the process, where a user asks for it.
mmengine 0.10.7 writes ``last_checkpoint``, logs and configs with ``open`` directly, and configs
still using ``file_client_args`` save through its ``HardDiskBackend``: those are not covered.
"""

import errno
import os
import os.path as osp
import secrets
import signal
import stat
import threading
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Optional, Union

import mmengine
from mmengine.fileio.backends import LocalBackend, register_backend

_O_CLOEXEC = getattr(os, 'O_CLOEXEC', 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | getattr(os, 'O_BINARY', 0)
# Where a temporary file cannot be made or renamed over the target. Not ENOSPC or EDQUOT: there
# stock mmengine's write would truncate the previous file and fail as well.
_NO_ATOMIC_RENAME = {
    errno.EACCES,
    errno.EPERM,
    errno.EBUSY,
    errno.EXDEV,
    errno.EROFS,
    errno.ENAMETOOLONG,
    errno.ENOENT,
    errno.ENOTDIR,
}
# Their default action ends the process without running ``finally`` blocks.
_FATAL_SIGNALS = [getattr(signal, name) for name in ('SIGTERM', 'SIGHUP') if hasattr(signal, name)]


@register_backend('cdcl_atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` and ``put_text`` replace the file atomically
    (see the module docstring for what is kept of a stock write).

    Example:
        >>> default_hooks = dict(checkpoint=dict(backend_args=dict(backend='cdcl_atomic_local')))
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        if not _write_atomically(obj, filepath):
            super().put(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        # As text mode writes it: '\n' becomes os.linesep.
        if not _write_atomically(obj.replace('\n', os.linesep).encode(encoding), filepath):
            super().put_text(obj, filepath, encoding)


def _write_atomically(data: bytes, filepath: Union[str, Path]) -> bool:
    """Replace ``filepath``'s content by ``data`` through a temporary file. False, having
    written nothing, where that is impossible and the stock write is the one to do."""
    mmengine.mkdir_or_exist(osp.dirname(filepath))
    target = osp.realpath(filepath)
    try:
        existing = os.lstat(target)
    except FileNotFoundError:
        existing = None
    except OSError:  # e.g. a folder in the path is a file: the stock write says so
        return False
    if existing is not None:
        if not stat.S_ISREG(existing.st_mode):  # a device, FIFO, socket or unresolvable link
            return False
        # Refuse what stock 'wb' would refuse (read-only file, immutable flag): a rename
        # would otherwise replace it.
        os.close(os.open(target, os.O_WRONLY | _O_CLOEXEC))
    refused = _replace(data, target, existing)
    if refused is None:
        return True
    if existing is not None:
        warnings.warn(f'{target} is written in place, not atomically: {refused}')
    return False


def _replace(data: bytes, target: str, existing: Optional[os.stat_result]) -> Optional[OSError]:
    """Write ``data`` to a temporary file next to ``target`` and rename it over ``target``.
    Returns the error that made either impossible, the temporary file removed."""
    while True:
        tmp = _temporary_name(target)
        with _removed_on_fatal_signals(tmp):
            fd = None
            try:
                # Created as open(target, 'wb') would create target: mode 0o666 less the umask.
                fd = os.open(tmp, _CREATE, 0o666)
                with os.fdopen(fd, 'wb') as f:
                    if existing is not None:
                        _keep_metadata(tmp, target, existing)
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())  # else a power loss may leave the new name empty
                os.replace(tmp, target)
                return None
            except BaseException as error:
                # An OSError before fd is set comes from os.open: nothing was created. A
                # KeyboardInterrupt there comes just after it: tmp exists.
                created = fd is not None or not isinstance(error, OSError)
                if created:
                    with suppress(FileNotFoundError):  # Ctrl-C may come after the rename
                        os.remove(tmp)
                if isinstance(error, FileExistsError) and not created:
                    continue  # another writer's temporary name
                if isinstance(error, OSError) and error.errno in _NO_ATOMIC_RENAME:
                    return error
                raise


def _temporary_name(target: str) -> str:
    """``.<name>.<8 hex>.tmp`` next to ``target``, ``<name>`` cut to fit the folder's NAME_MAX."""
    folder, name = osp.split(target)
    try:
        name_max = os.pathconf(folder, 'PC_NAME_MAX')
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no answer
        name_max = 255
    suffix = f'.{secrets.token_hex(4)}.tmp'
    # Cut in bytes, as NAME_MAX counts; fsdecode keeps a cut UTF-8 character as its bytes.
    stem = os.fsdecode(os.fsencode(name)[: (name_max if name_max > 0 else 255) - 1 - len(suffix)])
    return osp.join(folder, f'.{stem}{suffix}')


def _keep_metadata(tmp: str, target: str, existing: os.stat_result) -> None:
    """Give the temporary file ``tmp`` the owner, group, extended attributes and mode of
    ``target``, as far as this process may."""
    if hasattr(os, 'chown'):
        # Before chmod: a change of owner clears the set-user/group-ID bits.
        for uid in (existing.st_uid, -1):  # a non-root process may still keep the group
            try:
                os.chown(tmp, uid, existing.st_gid)
                break
            except PermissionError:
                continue
    if hasattr(os, 'listxattr'):
        with suppress(OSError):  # a file system without extended attributes
            for key in os.listxattr(target):
                with suppress(OSError):  # e.g. security.* without the privilege
                    os.setxattr(tmp, key, os.getxattr(target, key))
    os.chmod(tmp, stat.S_IMODE(existing.st_mode))


@contextmanager
def _removed_on_fatal_signals(tmp: str):
    """Make SIGTERM and SIGHUP remove ``tmp`` before they end the process, as they would have:
    their default action runs no ``finally`` block.

    Only in the main thread (the only one Python runs handlers in) and for signals left at their
    default: a handler the program installed keeps deciding (and a ``SystemExit`` it raises is
    cleaned up as any exception).
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    signums = [
        s for s in _FATAL_SIGNALS if in_main_thread and signal.getsignal(s) is signal.SIG_DFL
    ]

    def remove_and_end(signum, frame):
        with suppress(OSError):  # not created yet, or renamed already
            os.remove(tmp)
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    for s in signums:
        signal.signal(s, remove_and_end)
    try:
        yield
    finally:
        for s in signums:
            signal.signal(s, signal.SIG_DFL)


def use_atomic_local_writes() -> None:
    """Make mmengine write every local file of the process through :class:`AtomicLocalBackend`
    (its ``'local'`` backend replaced), by the user's choice: ``mmseg_cdcl`` itself never calls
    it, and names ``'cdcl_atomic_local'`` in ``backend_args`` instead."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
