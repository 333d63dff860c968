from .camvid import CamVidDataset
from .multi_dataset import MultiDataset
from .samplers import MultiDatasetSampler
from .transforms import RemapLabels

__all__ = ['CamVidDataset', 'MultiDataset', 'MultiDatasetSampler', 'RemapLabels']
