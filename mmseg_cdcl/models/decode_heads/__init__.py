from .dab_fcn_head import DABFCNHead
from .dab_psp_head import DABPSPHead
from .dataset_aware_head import DatasetAwareHeadMixin, head_dataset, is_dataset_aware

__all__ = ['DABFCNHead', 'DABPSPHead', 'DatasetAwareHeadMixin', 'head_dataset', 'is_dataset_aware']
