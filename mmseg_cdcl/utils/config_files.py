"""Config files: those shipped with mmseg_cdcl (source tree or installed package), and any
config named by path or as ``mmseg::...``."""
import os.path as osp

from mmengine.config import Config

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_path(relative: str) -> str:
    """The path of ``configs/<relative>``: in the installed package's ``.mim/configs`` (where
    OpenMMLab wheels ship their configs), else in the source tree's ``configs/``.

    Args:
        relative (str): The path under ``configs/``, e.g.
            ``'_base_/label_spaces/cityscapes_to_camvid.py'``.
    """
    candidates = (osp.join(_PACKAGE, '.mim', 'configs', relative),
                  osp.join(osp.dirname(_PACKAGE), 'configs', relative))
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'configs/{relative} is neither in {candidates[0]} nor in '
                            f'{candidates[1]}: reinstall mmseg-cdcl or check out its source')


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
