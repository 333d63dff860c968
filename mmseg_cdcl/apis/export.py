"""Export one dataset's branch of a CDCL model as a plain MMSeg model (config + checkpoint)."""
import copy
import os.path as osp
import re
from collections import OrderedDict
from typing import Tuple, Union

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.utils import mkdir_or_exist
from mmseg.registry import MODELS

from ..models.layers import DSBN, DSBN_CFG
from .inference import dataset_test_pipeline

# Arguments only the CDCL components take.
_CDCL_ARGS = ('num_datasets', 'dataset_names', 'loss_weights', 'default_dataset')


def plain_model_cfg(cfg, d: int):
    """Recursively rewrite a CDCL model config into the plain MMSeg one of dataset ``d``."""
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(plain_model_cfg(c, d) for c in cfg)
    if not isinstance(cfg, dict):
        return cfg
    cfg = {k: plain_model_cfg(v, d) for k, v in cfg.items()}
    if cfg.get('type') == 'DSBN':
        return DSBN.plain_cfg(cfg)
    cls = MODELS.get(cfg['type']) if isinstance(cfg.get('type'), str) else None
    plain_type = getattr(cls, 'plain_type', None)
    if plain_type is None:
        return cfg
    cfg['type'] = plain_type
    for key in _CDCL_ARGS:
        cfg.pop(key, None)
    for key in ('num_classes', 'ignore_index'):
        if isinstance(cfg.get(key), (list, tuple)):
            cfg[key] = cfg[key][d]
    if 'norm_cfg' not in cfg and cfg['type'] != 'EncoderDecoder':
        cfg['norm_cfg'] = DSBN.plain_cfg(DSBN_CFG)  # the DAB default; MMSeg heads default to none
    return cfg


def plain_state_dict(state_dict: dict, d: int) -> OrderedDict:
    """Dataset ``d``'s branch of every DSBN and classifier, under plain MMSeg keys."""
    branch = re.compile(r'\.(bns|conv_seg)\.(\d+)\.')
    plain = OrderedDict()
    for key, value in state_dict.items():
        m = branch.search(key)
        if m is None:
            plain[key] = value
        elif int(m.group(2)) == d:
            kept = '.' if m.group(1) == 'bns' else '.conv_seg.'
            plain[key[:m.start()] + kept + key[m.end():]] = value
    return plain


def export_single_dataset(config: Union[str, Config], checkpoint: str, dataset: str,
                          out_dir: str) -> Tuple[str, str]:
    """Write ``<out_dir>/<dataset>.py`` and ``<out_dir>/<dataset>.pth``: a stock MMSeg
    EncoderDecoder (ordinary BN, one classifier) holding ``dataset``'s branch, loadable with
    ``mmseg.apis.init_model`` without mmseg_cdcl.

    Returns:
        The paths of the config and the checkpoint.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    names = list(cfg.model.get('dataset_names', []))
    if dataset not in names:
        raise ValueError(f"unknown dataset '{dataset}': the model's datasets are {names}")
    d = names.index(dataset)

    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state_dict = ckpt.get('state_dict', ckpt)
    dataset_meta = ckpt.get('meta', {}).get('dataset_meta', {}).get('datasets', {}).get(dataset)
    meta = dict(exported_from=dict(checkpoint=osp.abspath(checkpoint), dataset=dataset))
    if dataset_meta is not None:
        meta['dataset_meta'] = dataset_meta

    plain = dict(default_scope='mmseg', model=plain_model_cfg(cfg.model.to_dict(), d))
    plain['model'].pop('pretrained', None)
    pipeline = dataset_test_pipeline(cfg, dataset)
    if pipeline is not None:
        plain['test_pipeline'] = pipeline
    config_path = osp.join(out_dir, f'{dataset}.py')
    ckpt_path = osp.join(out_dir, f'{dataset}.pth')
    mkdir_or_exist(out_dir)
    Config(plain).dump(config_path)
    torch.save(dict(state_dict=plain_state_dict(state_dict, d), meta=meta), ckpt_path)
    return config_path, ckpt_path
