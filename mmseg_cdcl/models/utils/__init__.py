from .branch_selection import BranchSelector
from .convert_dataset_aware import convert_dataset_aware
from .convert_universal_head import convert_universal_head
from .label_space import LabelSpace

__all__ = ['BranchSelector', 'LabelSpace', 'convert_dataset_aware', 'convert_universal_head']
