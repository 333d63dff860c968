from .branch_selection import BranchSelector
from .label_space import LabelSpace

__all__ = ['BranchSelector', 'LabelSpace']
