"""What the tests, the demo and the benchmark share (as ``mmengine.testing``): demo data in the
datasets' real formats, and configs shrunk to test size. Not imported by ``mmseg_cdcl``."""

from .demo_data import make_demo_data
from .shrink import set_crop, shrink_config, shrink_datasets, shrink_schedule, unformatted

__all__ = [
    'make_demo_data',
    'set_crop',
    'shrink_config',
    'shrink_datasets',
    'shrink_schedule',
    'unformatted',
]
