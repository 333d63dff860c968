from .atomic_local_backend import AtomicLocalBackend, use_atomic_local_writes
from .mmseg_tools import run_mmseg_tool
from .safe_checkpoint import allow_mmengine_checkpoints

__all__ = ['AtomicLocalBackend', 'allow_mmengine_checkpoints', 'run_mmseg_tool',
           'use_atomic_local_writes']
