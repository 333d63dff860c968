"""mmengine checkpoints readable by torch's safe loader for a run's loads, and no others."""

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...utils.safe_checkpoint import mmengine_checkpoints_allowed


@HOOKS.register_module()
class CheckpointAllowListHook(Hook):
    """Lets the run's ``load_from``, ``--resume`` and ``init_cfg=dict(type='Pretrained')`` read
    the checkpoints mmengine writes, under torch's safe (``weights_only``) loader: the types
    they hold are allowed (``mmengine_checkpoints_allowed``) from ``before_run`` to the start of
    the run's loop (mmengine's ``Runner.train``, ``val`` and ``test`` load in between), or
    ``after_run``. Before and after, the process's ``torch.load`` keeps torch's allow-list,
    also where the loop raises; a run that raises while loading leaves it allowed (mmengine
    has no hook for that).

    Example:
        >>> custom_hooks = [dict(type='CheckpointAllowListHook')]  # configs/_base_/cdcl_runtime.py
    """

    priority = 'VERY_HIGH'  # allowed before any other hook's before_run

    def __init__(self):
        self._allowed = None

    def before_run(self, runner) -> None:
        if self._allowed is None:
            self._allowed = mmengine_checkpoints_allowed()
            self._allowed.__enter__()

    def _leave(self, runner) -> None:
        allowed, self._allowed = self._allowed, None
        if allowed is not None:
            allowed.__exit__(None, None, None)

    before_train = before_val = before_test = after_run = _leave
