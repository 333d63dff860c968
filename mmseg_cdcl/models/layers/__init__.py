from .dataset_branches import DatasetBranches
from .dataset_context import (
    DatasetAwareModule,
    DatasetRouting,
    dataset_aware_modules,
    dataset_context,
)
from .dataset_statistics import DatasetStatistics, updated_buffers
from .dataset_unions import DatasetUnions, union_log_probabilities
from .dsbn import DSBN, DSBN_CFG, DatasetBatchTooSmall, dsbn_cfg

__all__ = [
    'DSBN',
    'DSBN_CFG',
    'DatasetAwareModule',
    'DatasetBatchTooSmall',
    'DatasetBranches',
    'DatasetRouting',
    'DatasetStatistics',
    'DatasetUnions',
    'dataset_aware_modules',
    'dataset_context',
    'dsbn_cfg',
    'union_log_probabilities',
    'updated_buffers',
]
