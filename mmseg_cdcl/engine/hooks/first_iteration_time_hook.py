"""The time a run takes to its first (new) training iteration: the cost of a start or resume."""

import time
from typing import Optional

from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class FirstIterationTimeHook(Hook):
    """Records in ``times['first_iter']`` the seconds from ``start`` to the end of the first
    training iteration the run makes (after a resume: the first new one).

    Args:
        start (float, optional): A ``time.perf_counter()`` value, e.g. taken before
            ``Runner.from_cfg``. Defaults to the hook's construction.

    Example:
        >>> hook = FirstIterationTimeHook(time.perf_counter())
        >>> runner = Runner.from_cfg(cfg)
        >>> runner.register_hook(hook)
        >>> runner.train()
        >>> hook.times['first_iter']
    """

    def __init__(self, start: Optional[float] = None):
        self.start = time.perf_counter() if start is None else start
        self.times = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.times.setdefault('first_iter', time.perf_counter() - self.start)
