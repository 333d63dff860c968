"""Checkpoints (and every other file mmengine writes locally) appear whole or not at all."""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.utils import mkdir_or_exist


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing to a temporary file in the same folder and
    renaming it into place, so that a process killed while saving a checkpoint leaves the
    previous file (or none), never a truncated one that ``--resume`` would pick up."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        self._write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        self._write(obj.encode(encoding), filepath)

    @staticmethod
    def _write(data: bytes, filepath: Union[str, Path]) -> None:
        folder = osp.dirname(osp.abspath(filepath))
        mkdir_or_exist(folder)
        # A unique name per writer: ranks may write the same file at once. A writer killed
        # before its rename leaves this hidden file behind, never a truncated ``filepath``.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(filepath)}.',
                                   suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise


def use_atomic_local_writes() -> None:
    """Make mmengine write local files through :class:`AtomicLocalBackend`."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
