"""Config files named by path or as ``mmseg::...``."""
import os.path as osp

from mmengine.config import Config


def load_config(path: str) -> Config:
    """``Config.fromfile`` of a path or of an installed package's config (``mmseg::...``).

    Args:
        path (str): A config file, or ``<package>::<path under its configs>``.
    """
    if '::' in path:
        path, _ = Config._get_cfg_path(path, '')  # how mmengine resolves such _base_ entries
    if not osp.isfile(path):
        raise FileNotFoundError(f'no config file {path}')
    return Config.fromfile(path)
