from mmseg.registry import DATASETS

from ..utils.generic_names import register_generic_name
from .camvid import CamVidDataset
from .multi_dataset import MultiDataset
from .samplers import MultiDatasetSampler
from .transforms import RemapLabels

# The names of configs written before the plugin's own, where no user's class has taken them.
register_generic_name(DATASETS, 'CamVidDataset', CamVidDataset)
register_generic_name(DATASETS, 'MultiDataset', MultiDataset)

__all__ = ['CamVidDataset', 'MultiDataset', 'MultiDatasetSampler', 'RemapLabels']
