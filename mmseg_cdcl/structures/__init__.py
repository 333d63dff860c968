from .prediction_space import (
    LABEL_SPACE,
    PRED_SPACE,
    branch_space,
    labels_in_space,
    resolve_space,
    set_prediction_space,
)

__all__ = [
    'LABEL_SPACE',
    'PRED_SPACE',
    'branch_space',
    'labels_in_space',
    'resolve_space',
    'set_prediction_space',
]
