from .multi_dataset_iou_metric import MultiDatasetIoUMetric

__all__ = ['MultiDatasetIoUMetric']
