"""Lets torch's safe (``weights_only``) loader read the checkpoints mmengine and MMSeg write.

Since torch 2.6 ``torch.load`` only unpickles allow-listed types, and mmengine 0.10.7 loads with
that default, so ``load_from``, ``--resume`` and ``init_cfg=dict(type='Pretrained')`` fail on
any checkpoint mmengine itself wrote. This allow-lists exactly what those hold (numpy arrays
and scalars, mmengine's ``HistoryBuffer``) instead of turning ``weights_only`` off: any other
pickled object is still refused, a checkpoint being untrusted input.
"""
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _history_buffer_method(owner, name: str):
    """The one use of ``getattr`` in mmengine checkpoints: a HistoryBuffer's statistics methods
    (min, max, current, mean) pickled by reference. Anything else is refused."""
    # The defaults are registered lazily, custom ones by HistoryBuffer.register_statistics.
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a checkpoint: only HistoryBuffer statistics '
        f'methods {sorted(allowed)} are allowed')


def _numpy_globals() -> list:
    core = np._core if hasattr(np, '_core') else np.core
    reconstruct, scalar = core.multiarray._reconstruct, core.multiarray.scalar
    safe = [np.ndarray, np.dtype, reconstruct, scalar]
    # Checkpoints written under numpy 1.x name the same functions under numpy.core.
    safe += [(reconstruct, 'numpy.core.multiarray._reconstruct'),
             (scalar, 'numpy.core.multiarray.scalar')]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25 pickles dtypes by their class
    if dtypes is not None:
        safe += [t for t in vars(dtypes).values() if isinstance(t, type)
                 and issubclass(t, np.dtype)]
    return safe


def allow_mmengine_checkpoints() -> None:
    """Allow-list, process-wide, the types of mmengine/MMSeg checkpoints for ``torch.load``."""
    if not hasattr(torch.serialization, 'add_safe_globals'):  # torch < 2.4 loads them anyway
        return
    torch.serialization.add_safe_globals(
        _numpy_globals() + [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')])
