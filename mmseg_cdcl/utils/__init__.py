from .atomic_local_backend import AtomicLocalBackend, use_atomic_local_writes
from .config_files import load_config
from .config_literals import dump_config as dump_config
from .mmseg_tools import run_mmseg_tool
from .safe_checkpoint import allow_mmengine_checkpoints, mmengine_checkpoints_allowed
from .shipped_files import config_path

__all__ = [
    'AtomicLocalBackend',
    'allow_mmengine_checkpoints',
    'config_path',
    'load_config',
    'mmengine_checkpoints_allowed',
    'run_mmseg_tool',
    'use_atomic_local_writes',
]
