"""The private parts of mmengine (0.10.x) that mmseg-cdcl relies on, and why, in one place.

Each has no public equivalent in mmengine 0.10.7; ``tests/test_utils/test_mmengine_internals.py``
checks that each still exists and behaves as relied on here, so that a change of mmengine fails
there, by name, rather than as a wrong resume or a wrong update. Where mmengine has a public
API (``CheckpointLoader.load_checkpoint`` for reading a checkpoint file, ``model(**data,
mode='loss')`` for a forward), the package uses it instead.
"""

import copy
import functools
import inspect
import os
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Dict

import mmengine.config.config as mmengine_config
import mmengine.config.utils as mmengine_config_utils
from mmengine.config import Config, ConfigDict
from mmengine.logging import HistoryBuffer
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch import nn


def resume_arguments(runner: Runner) -> tuple:
    """``(resume, load_from)`` as the runner was given them. ``Runner.load_or_resume`` reads
    them when training starts, and ``runner.cfg`` holds them only for a runner built from a
    config."""
    return runner._resume, runner._load_from


def set_resume_checkpoint(runner: Runner, filename: str) -> None:
    """Make the runner's ``load_or_resume`` (which runs after the ``before_run`` hooks) resume
    from ``filename``, as ``Runner(resume=True, load_from=filename)`` does."""
    runner._load_from = filename


def infinite_dataloader_iterator(dataloader):
    """A new iterator of ``dataloader`` of the kind ``IterBasedTrainLoop`` iterates (started
    again at the dataloader's end): a resumed ``DATTrainLoop`` replaces the loop's, which has
    drawn from the sampler before the sampler was set to the resume point."""
    return _InfiniteDataloaderIterator(dataloader)


def uncount_backward(optim_wrapper: OptimWrapper) -> None:
    """Undo the count of one ``optim_wrapper.backward``: it counts every call as an iteration
    towards ``accumulative_counts``, and ``DATTrainLoop`` back-propagates one iteration in
    several parts. (``inner_count`` is read-only.)"""
    optim_wrapper._inner_count -= 1


def load_checkpoint_to_model(model: nn.Module, checkpoint: dict, strict: bool = False) -> dict:
    """mmengine's ``load_checkpoint`` of a checkpoint already read: its state dict into
    ``model``, the ``module.`` prefix of a wrapped model's (DDP's) removed from its keys and,
    unlike mmengine, from its ``_metadata`` too, so that each module gets its own metadata (a
    CDCL model's the datasets it states, not the wrapper's). ``load_cdcl_checkpoint`` states
    the datasets in the checkpoint in between."""
    from collections import OrderedDict

    state_dict = checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint
    metadata = getattr(state_dict, '_metadata', None)
    if not state_dict or metadata is None or not all(k.startswith('module.') for k in state_dict):
        return _load_checkpoint_to_model(model, checkpoint, strict=strict)
    unwrapped = OrderedDict((k[len('module.') :], v) for k, v in state_dict.items())
    unwrapped._metadata = OrderedDict(
        (k, v) for k, v in metadata.items() if k != 'module' and not k.startswith('module.')
    )
    for key, value in metadata.items():
        if key == 'module' or key.startswith('module.'):
            unwrapped._metadata[key[len('module.') :]] = value
    _load_checkpoint_to_model(
        model,
        dict(checkpoint, state_dict=unwrapped) if 'state_dict' in checkpoint else unwrapped,
        strict=strict,
    )
    return checkpoint


def registered_statistics() -> Dict[str, Callable]:
    """The statistics methods registered with ``HistoryBuffer.register_statistics``, by name:
    ``HistoryBuffer.__getstate__`` pickles every one into every checkpoint, so the safe loader
    must admit them (``utils/safe_checkpoint.py``)."""
    return HistoryBuffer._statistics_methods


def config_file_of(path: str) -> str:
    """The file of a config named ``<package>::<path under its configs>``, found as mmengine
    finds a ``_base_`` of that form."""
    return Config._get_cfg_path(path, '')[0]


def config_dict(cfg: Config) -> ConfigDict:
    """The config's own dict, to change in place (``Config.to_dict`` returns a copy)."""
    return cfg._cfg_dict


@contextmanager
def memoized_config_formatting(entries: int = 8):
    """Within it, mmengine formats each config text with yapf once, not at each use.

    ``Config.pretty_text`` passes the whole config through yapf's ``FormatCode`` (the name
    ``mmengine.config.config`` imports) every time: the Runner's log, its config dump and each
    checkpoint's meta, 1-3 s each on a CPU and most of a short run's time, for the same text.
    Within it, that name is a wrapper with ``FormatCode``'s signature that keeps the results of
    mmengine's own call (a text and a style dict) for the last ``entries`` texts and passes any
    other call through; what is written is unchanged. On leaving, the name is yapf's again and
    the results are dropped. For a tool's process (``run_mmseg_tool``).

    Args:
        entries (int): Texts whose formatted result is kept. Defaults to 8.
    """
    format_code = mmengine_config.FormatCode
    signature = inspect.signature(format_code)
    kept: OrderedDict = OrderedDict()

    @functools.wraps(format_code)
    def memoized(*args, **kwargs):
        try:
            arguments = signature.bind(*args, **kwargs).arguments
        except TypeError:
            arguments = {}  # yapf's own error follows
        style = arguments.get('style_config')
        if set(arguments) != {'unformatted_source', 'style_config'} or not isinstance(style, dict):
            return format_code(*args, **kwargs)
        key = (arguments['unformatted_source'], repr(style))
        if key in kept:
            kept.move_to_end(key)
            return kept[key]
        kept[key] = formatted = format_code(*args, **kwargs)
        if len(kept) > entries:
            kept.popitem(last=False)
        return formatted

    mmengine_config.FormatCode = memoized
    try:
        yield
    finally:
        if mmengine_config.FormatCode is memoized:  # else another has replaced it since
            mmengine_config.FormatCode = format_code


@contextmanager
def memoized_package_config_lookup(entries: int = 16):
    """Within it, mmengine looks up each ``package::`` config (an ``mmseg::`` base) once.

    mmengine's ``_get_cfg_metainfo`` reads every metafile of the package's model index at each
    lookup (1431 YAML files of mmseg 1.2.2, 0.2-0.6 s on a CPU), and for mmseg 1.2.2 every
    lookup fails: the index names its configs with the ``.py`` that mmengine strips from the
    query, so ``Config._get_cfg_path`` takes its ``ValueError`` and joins the package's config
    folder instead. Within it, the last ``entries`` answers are given again while the package's
    ``model-index.yml`` is unchanged (a reinstall rewrites it): an entry's copy, or a new
    ``ValueError`` with the same message (no traceback is kept). On leaving, the name is
    mmengine's again and the answers are dropped.

    Args:
        entries (int): Answers kept (an error message is 36 kB for mmseg 1.2.2). Defaults to 16.
    """
    lookup = mmengine_config_utils._get_cfg_metainfo
    kept: OrderedDict = OrderedDict()

    @functools.wraps(lookup)
    def memoized(package_path: str, cfg_path: str) -> dict:
        try:
            index = os.stat(os.path.join(package_path, '.mim', 'model-index.yml')).st_mtime_ns
        except OSError:
            return lookup(package_path, cfg_path)  # mmengine's own error
        key = (package_path, cfg_path, index)
        if key in kept:
            kept.move_to_end(key)
            answer, error = kept[key]
        else:
            try:
                answer, error = lookup(package_path, cfg_path), None
            except ValueError as raised:
                answer, error = None, raised.args
            kept[key] = answer, error
            if len(kept) > entries:
                kept.popitem(last=False)
        if error is not None:
            raise ValueError(*error)
        return copy.deepcopy(answer)

    mmengine_config_utils._get_cfg_metainfo = memoized
    try:
        yield
    finally:
        if mmengine_config_utils._get_cfg_metainfo is memoized:
            mmengine_config_utils._get_cfg_metainfo = lookup
