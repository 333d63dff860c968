"""A progress bar over validation and test images."""

from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar
from mmseg.registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """Shows a progress bar (images done, rate, ETA) while validating and testing.

    Example:
        >>> custom_hooks = [dict(type='ProgressBarHook')]
    """

    priority = 'VERY_LOW'

    def _start(self, runner, loop) -> None:
        self._bar = ProgressBar(len(loop.dataloader.dataset)) if is_main_process() else None

    def _advance(self, outputs) -> None:
        if self._bar is not None:  # every rank evaluates as many images as the main one
            self._bar.update(len(outputs) * get_world_size())

    def before_val_epoch(self, runner) -> None:
        self._start(runner, runner.val_loop)

    def before_test_epoch(self, runner) -> None:
        self._start(runner, runner.test_loop)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._advance(outputs)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._advance(outputs)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._bar = None

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._bar = None
