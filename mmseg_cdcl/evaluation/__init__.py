from .bn_statistics import bn_statistics
from .label_space_learning import learn_label_space
from .metrics import *  # noqa: F401,F403
from .metrics import __all__ as _metrics

__all__ = [*_metrics, 'bn_statistics', 'learn_label_space']
