from .dataset_context import DatasetAwareModule, DatasetRouting, dataset_context
from .dsbn import DSBN, DSBN_CFG, dsbn_cfg

__all__ = ['DSBN', 'DSBN_CFG', 'DatasetAwareModule', 'DatasetRouting', 'dataset_context',
           'dsbn_cfg']
