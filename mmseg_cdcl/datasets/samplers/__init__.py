from .multi_dataset_sampler import MultiDatasetSampler

__all__ = ['MultiDatasetSampler']
