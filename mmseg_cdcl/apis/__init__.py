from .add_dataset_branch import add_dataset_branch
from .checkpoint import load_cdcl_checkpoint
from .convert_config import config_source, convert_config
from .export import export_single_dataset, plain_model_cfg, plain_state_dict
from .inference import dataset_test_pipeline, init_cdcl_model

__all__ = [
    'add_dataset_branch',
    'config_source',
    'convert_config',
    'dataset_test_pipeline',
    'export_single_dataset',
    'init_cdcl_model',
    'load_cdcl_checkpoint',
    'plain_model_cfg',
    'plain_state_dict',
]
