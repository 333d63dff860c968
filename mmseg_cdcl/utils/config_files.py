"""Config files named by path or as ``mmseg::...``."""

import os.path as osp

from mmengine.config import Config

from .mmengine_internals import config_file_of


def load_config(path: str) -> Config:
    """``Config.fromfile`` of a path or of an installed package's config (``mmseg::...``).

    Args:
        path (str): A config file, or ``<package>::<path under its configs>``.
    """
    if '::' in path:
        path = config_file_of(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no config file {path}')
    return Config.fromfile(path)
