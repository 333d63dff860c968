from .dataset_branches import DatasetBranches
from .dataset_context import (DatasetAwareModule, DatasetRouting, dataset_aware_modules,
                              dataset_context)
from .dsbn import DSBN, DSBN_CFG, DatasetBatchTooSmall, dsbn_cfg

__all__ = ['DSBN', 'DSBN_CFG', 'DatasetAwareModule', 'DatasetBatchTooSmall', 'DatasetBranches',
           'DatasetRouting', 'dataset_aware_modules', 'dataset_context', 'dsbn_cfg']
