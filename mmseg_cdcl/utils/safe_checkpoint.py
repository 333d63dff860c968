"""Lets torch's safe (``weights_only``) loader read the checkpoints mmengine and MMSeg write.

Since torch 2.6 ``torch.load`` only unpickles allow-listed types, and mmengine 0.10.7 loads with
that default, so ``load_from``, ``--resume`` and ``init_cfg=dict(type='Pretrained')`` fail on
any checkpoint mmengine itself wrote. This allow-lists exactly what those hold instead of turning
``weights_only`` off, a checkpoint being untrusted input:

- numpy arrays, scalars and dtypes, and mmengine's ``HistoryBuffer`` (the message hub's logs);
- the statistics a ``HistoryBuffer`` pickles by reference: its own ``min``, ``max``,
  ``current`` and ``mean`` (as ``getattr(HistoryBuffer, name)``), and the functions registered
  with ``HistoryBuffer.register_statistics``, by their qualified names (``module.function``):
  ``HistoryBuffer.__getstate__`` puts every registered statistic into every checkpoint. Each
  is admitted when it is registered (those registered before ``mmseg_cdcl`` is imported, when
  it is), so a load admits the statistics its process has registered, as resuming a run that
  registered one needs its module imported first (``custom_imports``) anyway.

Any other pickled function or class, including another function of a statistic's module, is
still refused by torch's ``Unsupported global: GLOBAL module.name`` error, and a ``getattr`` of
anything but a statistic by ``refusing getattr(owner, name)``. A statistic must be a module-level
function: one defined in a class body is pickled through its class, which stays refused.
"""

import functools
import pickle
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


def _admit(statistics) -> None:
    """Allow-list module-level functions by the name pickle writes for them, ``module.name``.
    (HistoryBuffer's own methods go through ``getattr``.)"""
    torch.serialization.add_safe_globals(
        [
            (f, f'{f.__module__}.{f.__qualname__}')
            for f in statistics
            if '.' not in getattr(f, '__qualname__', '.')
        ]
    )  # e.g. not a callable instance


def _admit_statistics_when_registered() -> None:
    """Admit the statistics registered so far, and make ``HistoryBuffer.register_statistics``
    admit those registered later."""
    _admit(registered_statistics().values())
    register = HistoryBuffer.register_statistics.__func__
    if getattr(register, 'admits_safe_loading', False):  # already wrapped
        return

    @functools.wraps(register)
    def register_statistics(cls, method: Callable) -> Callable:
        register(cls, method)
        _admit([method])
        return method

    register_statistics.admits_safe_loading = True
    HistoryBuffer.register_statistics = classmethod(register_statistics)


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


def allow_mmengine_checkpoints() -> None:
    """Allow-list, process-wide, the types of mmengine/MMSeg checkpoints for ``torch.load``."""
    if not hasattr(torch.serialization, 'add_safe_globals'):  # torch < 2.4 loads them anyway
        return
    torch.serialization.add_safe_globals(
        _numpy_globals() + [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')]
    )
    _admit_statistics_when_registered()
