from .export import export_single_dataset, plain_model_cfg, plain_state_dict

__all__ = ['export_single_dataset', 'plain_model_cfg', 'plain_state_dict']
