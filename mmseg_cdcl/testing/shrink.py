"""A config at test size: the same components on small crops, few images and few iterations.

Tests, the demo and the benchmark run the real configs this way, so that what they exercise is
what a user trains, only smaller.
"""

import os.path as osp
from typing import Optional, Sequence, Tuple

from mmengine.config import Config

from ..utils.mmengine_internals import config_dict


def unformatted(cfg: Config) -> Config:
    """The same config, whose text mmengine does not pass through yapf at each of a Runner's
    uses (log, dump, visualizer, every checkpoint: 1-2.5 s each, most of a test-size run's
    time). ``Config.fromfile``'s ``format_python_code=False`` would say so, but mmengine 0.10.7
    drops it for plain ``.py`` configs.

    Args:
        cfg (Config): Any config; left unchanged.
    """
    return Config(
        cfg.to_dict(),
        cfg_text=cfg.text,
        filename=cfg.filename,
        env_variables=cfg.env_variables,
        format_python_code=False,
    )


def shrink_schedule(cfg: Config, max_iters: int, val_interval: Optional[int] = None) -> Config:
    """Train ``max_iters`` iterations: the loop, the first scheduler's end and the checkpoint
    interval follow; validation every ``val_interval`` iterations (default: at the end).

    Args:
        cfg (Config): An iteration-based config; changed in place and returned.
        max_iters (int): Iterations to train.
        val_interval (int, optional): Iterations between validations. Defaults to
            ``max_iters``.
    """
    cfg.train_cfg.update(max_iters=max_iters, val_interval=val_interval or max_iters)
    cfg.param_scheduler[0].end = max_iters
    cfg.default_hooks.checkpoint.interval = max_iters
    return cfg


def set_crop(cfg: Config, crop: Sequence[int]) -> Config:
    """Train on crops of ``crop`` (H, W): every ``RandomCrop`` of the training pipelines and the
    data preprocessor's size; test scales stay the config's.

    Args:
        cfg (Config): Changed in place and returned.
        crop (Sequence[int]): (H, W) of the crops.
    """

    def visit(node):
        if isinstance(node, dict):
            if node.get('type') == 'RandomCrop':
                node['crop_size'] = tuple(crop)
            node = list(node.values())
        for value in node if isinstance(node, list) else ():
            visit(value)

    visit(config_dict(cfg).get('train_dataloader'))
    cfg.model.data_preprocessor.size = tuple(crop)
    return cfg


def shrink_datasets(node, crop: Sequence[int], data_dir: Optional[str] = None):
    """Resizes to twice the crop's width by its height and crops of ``crop`` in every pipeline
    under ``node`` (a config, dict or list, changed in place); with ``data_dir``, the data roots
    under ``data/`` moved under ``data_dir`` (``data/demo/x`` becomes ``<data_dir>/demo/x``).

    Args:
        node (Config | dict | list): Datasets, dataloaders or a whole config.
        crop (Sequence[int]): The (H, W) of the crops.
        data_dir (str, optional): The folder standing for the configs' relative ``data/``.
    """
    if isinstance(node, Config):
        node = config_dict(node)
    if isinstance(node, dict):
        kind = node.get('type')
        if kind in ('RandomResize', 'Resize'):
            node['scale'] = (crop[1] * 2, crop[0])
        if kind == 'RandomCrop':
            node['crop_size'] = tuple(crop)
        root = node.get('data_root')
        if data_dir is not None and isinstance(root, str) and root.startswith('data/'):
            node['data_root'] = osp.join(data_dir, root[len('data/') :])
        node = list(node.values())
    for value in node if isinstance(node, list) else ():
        shrink_datasets(value, crop, data_dir)


def shrink_config(
    cfg: Config,
    crop: Tuple[int, int] = (64, 64),
    per_dataset: int = 2,
    max_iters: int = 2,
    data_dir: Optional[str] = None,
) -> Config:
    """The same config at test size: small resizes and crops, ``per_dataset`` images of each
    dataset per batch, ``max_iters`` iterations, no workers, no pretrained download, a log line
    every iteration. Everything else stays the config's.

    Args:
        cfg (Config): A config with train, val and test dataloaders; changed in place and
            returned.
        crop (tuple[int, int]): (H, W) of the crops and of the data preprocessor's size.
        per_dataset (int): Images per dataset and batch (per batch for one dataset).
        max_iters (int): Iterations to train; validation and checkpoint at the last.
        data_dir (str, optional): See :func:`shrink_datasets`.

    Example:
        >>> cfg = shrink_config(Config.fromfile('configs/cdcl_cityscapes_bdd.py'))
        >>> cfg.train_cfg.max_iters, cfg.model.data_preprocessor.size
        (2, (64, 64))
    """
    shrink_datasets(cfg, crop, data_dir)
    cfg.model.pretrained = None
    cfg.model.data_preprocessor.size = tuple(crop)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(num_workers=0, persistent_workers=False)
    batch_sampler = cfg.train_dataloader.get('batch_sampler')
    if batch_sampler is not None:
        batch_sampler.batch_sizes = {k: per_dataset for k in batch_sampler.batch_sizes}
    else:
        cfg.train_dataloader.batch_size = per_dataset
    shrink_schedule(cfg, max_iters)
    cfg.default_hooks.logger.interval = 1
    return cfg
