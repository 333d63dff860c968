"""mmseg-cdcl: Cross-Dataset Collaborative Learning for MMSegmentation 1.x.

Importing the package registers its components in MMSeg's registries (scope ``mmseg``), lets
torch's safe checkpoint loader read mmengine checkpoints and makes mmengine's local file writes
(checkpoints) atomic; mmengine formats each config text and looks up each ``mmseg::`` config
once per process, not at every checkpoint and every config file.
"""

from . import apis, datasets, engine, evaluation, models, visualization  # noqa: F401  (registers)
from .models.layers import dataset_context
from .utils import allow_mmengine_checkpoints, use_atomic_local_writes
from .utils.mmengine_internals import memoize_config_formatting, memoize_package_config_lookup
from .version import __version__

allow_mmengine_checkpoints()
use_atomic_local_writes()
memoize_config_formatting()
memoize_package_config_lookup()

__all__ = ['__version__', 'allow_mmengine_checkpoints', 'dataset_context']
