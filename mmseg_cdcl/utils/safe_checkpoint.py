"""Lets torch's safe (``weights_only``) loader read the checkpoints mmengine and MMSeg write.

Since torch 2.6 ``torch.load`` only unpickles allow-listed types, and mmengine 0.10.7 loads with
that default, so ``load_from``, ``--resume`` and ``init_cfg=dict(type='Pretrained')`` fail on
any checkpoint mmengine itself wrote. This allow-lists exactly what those hold instead of turning
``weights_only`` off, a checkpoint being untrusted input:

- numpy arrays, scalars and dtypes, and mmengine's ``HistoryBuffer`` (the message hub's logs);
- the statistics a ``HistoryBuffer`` pickles by reference: its own ``min``, ``max``,
  ``current`` and ``mean`` (as ``getattr(HistoryBuffer, name)``), and the functions registered
  with ``HistoryBuffer.register_statistics``, by their qualified names (``module.function``):
  ``HistoryBuffer.__getstate__`` puts every registered statistic into every checkpoint. Those
  registered when the allow-list is entered are admitted, so a run that registered one resumes
  once the module that registers it is imported (``custom_imports``).

Any other pickled function or class, including another function of a statistic's module, is
still refused by torch's ``Unsupported global: GLOBAL module.name`` error, and a ``getattr`` of
anything but a statistic by ``refusing getattr(owner, name)``. A statistic must be a module-level
function: one defined in a class body is pickled through its class, which stays refused.

Scope: :func:`mmengine_checkpoints_allowed` allows them for what runs inside it (the plugin's
own loads, and a CDCL run's through ``CheckpointAllowListHook``); every other ``torch.load`` of
the process keeps torch's allow-list. :func:`allow_mmengine_checkpoints` allows them for the
whole process, where a user asks for it.
"""

import pickle
from contextlib import contextmanager
from typing import Callable, List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from .mmengine_internals import registered_statistics

_OWN_STATISTICS = ('min', 'max', 'current', 'mean')


def _statistics() -> List[Callable]:
    """HistoryBuffer's own statistics methods and those registered so far. (mmengine registers
    its own lazily, at the first ``HistoryBuffer()``.)"""
    own = [getattr(HistoryBuffer, name) for name in _OWN_STATISTICS]
    return own + list(registered_statistics().values())


def _history_buffer_method(owner, name: str):
    """The one use of ``getattr`` in mmengine checkpoints: a HistoryBuffer statistics method
    pickled by reference. Anything else is refused."""
    method = getattr(owner, name, None) if owner is HistoryBuffer else None
    if method is not None and any(method is statistic for statistic in _statistics()):
        return method
    allowed = sorted({*_OWN_STATISTICS, *registered_statistics()})
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a checkpoint: only HistoryBuffer statistics '
        f'methods {allowed} are allowed'
    )


def _numpy_globals() -> list:
    core = np._core if hasattr(np, '_core') else np.core
    reconstruct, scalar = core.multiarray._reconstruct, core.multiarray.scalar
    safe = [np.ndarray, np.dtype, reconstruct, scalar]
    # Checkpoints written under numpy 1.x name the same functions under numpy.core.
    safe += [
        (reconstruct, 'numpy.core.multiarray._reconstruct'),
        (scalar, 'numpy.core.multiarray.scalar'),
    ]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25 pickles dtypes by their class
    if dtypes is not None:
        safe += [
            t for t in vars(dtypes).values() if isinstance(t, type) and issubclass(t, np.dtype)
        ]
    return safe


def mmengine_checkpoint_globals() -> list:
    """What mmengine/MMSeg checkpoints hold beyond torch's own allow-list, in the form of
    ``torch.serialization.add_safe_globals``'s argument: the statistics registered so far
    included, by the name pickle writes for them (``module.name``)."""
    registered = [
        (f, f'{f.__module__}.{f.__qualname__}')
        for f in registered_statistics().values()
        # HistoryBuffer's own go through getattr; a callable instance has no name to admit
        if '.' not in getattr(f, '__qualname__', '.')
    ]
    return (
        _numpy_globals()
        + [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')]
        + registered
    )


@contextmanager
def mmengine_checkpoints_allowed():
    """Within it, torch's safe loader reads mmengine/MMSeg checkpoints; on leaving it, torch's
    allow-list is as it was (what the process had allowed itself stays allowed). torch's
    allow-list is one per process: other threads' loads meanwhile see it too.

    Example:
        >>> from mmseg.apis import init_model
        >>> with mmengine_checkpoints_allowed():  # a checkpoint mmengine's Runner wrote
        ...     model = init_model('config.py', 'work_dirs/iter_80000.pth')
    """
    if not hasattr(torch.serialization, 'safe_globals'):  # torch < 2.5 loads them anyway
        yield
        return
    present = set(torch.serialization.get_safe_globals())
    added = [g for g in mmengine_checkpoint_globals() if g not in present]
    with torch.serialization.safe_globals(added):  # removes only ``added`` on leaving
        yield


def allow_mmengine_checkpoints() -> None:
    """Allow mmengine/MMSeg checkpoints for every ``torch.load`` of the process, by the user's
    choice (``mmseg_cdcl`` itself never calls it): the statistics registered when it is called
    (call it again after registering another). :func:`mmengine_checkpoints_allowed` is the
    scoped form."""
    if not hasattr(torch.serialization, 'add_safe_globals'):  # torch < 2.4 loads them anyway
        return
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
