from .dab_fcn_head import DABFCNHead
from .dab_psp_head import DABPSPHead
from .dataset_aware_head import DatasetAwareHeadMixin

__all__ = ['DABFCNHead', 'DABPSPHead', 'DatasetAwareHeadMixin']
