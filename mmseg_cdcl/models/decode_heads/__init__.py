from .dab_fcn_head import DABFCNHead
from .dab_psp_head import DABPSPHead
from .dataset_aware_head import DatasetAwareHeadMixin, head_dataset, is_dataset_aware
from .universal_head import UniversalHeadMixin, is_universal

__all__ = [
    'DABFCNHead',
    'DABPSPHead',
    'DatasetAwareHeadMixin',
    'UniversalHeadMixin',
    'head_dataset',
    'is_dataset_aware',
    'is_universal',
]
