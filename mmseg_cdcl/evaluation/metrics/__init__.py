from .multi_dataset_iou_metric import MultiDatasetIoUMetric
from .unknown_source_metric import UnknownSourceMetric

__all__ = ['MultiDatasetIoUMetric', 'UnknownSourceMetric']
