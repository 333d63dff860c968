from .mmseg_tools import run_mmseg_tool
from .safe_checkpoint import allow_mmengine_checkpoints

__all__ = ['allow_mmengine_checkpoints', 'run_mmseg_tool']
