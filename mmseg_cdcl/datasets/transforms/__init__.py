from .dataset_test_pipelines import DatasetTestPipelines, dataset_test_pipeline, inference_pipeline
from .remap_labels import RemapLabels

__all__ = ['DatasetTestPipelines', 'RemapLabels', 'dataset_test_pipeline', 'inference_pipeline']
