"""mmseg-cdcl: Cross-Dataset Collaborative Learning for MMSegmentation 1.x.

Importing the package registers its components in MMSeg's registries (scope ``mmseg``), and
mmengine's file backend ``'cdcl_atomic_local'``; nothing else of the process changes
(``tests/test_import_side_effects.py``). What the plugin needs beyond that is scoped to what
it is for: torch's safe loader reads mmengine checkpoints within
``mmengine_checkpoints_allowed()`` (the plugin's own loads, and a CDCL run's through
``CheckpointAllowListHook``), and a CDCL run's checkpoints are written atomically through the
backend its configs name (docs/reliability.md).
"""

from . import apis, datasets, engine, evaluation, models, visualization  # noqa: F401  (registers)
from .models.layers import dataset_context
from .utils import allow_mmengine_checkpoints, mmengine_checkpoints_allowed
from .version import __version__

__all__ = [
    '__version__',
    'allow_mmengine_checkpoints',
    'dataset_context',
    'mmengine_checkpoints_allowed',
]
