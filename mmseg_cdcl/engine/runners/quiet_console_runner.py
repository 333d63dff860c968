"""A Runner whose console shows errors only; its log file stays complete."""

import logging

from mmengine.runner import Runner
from mmseg.registry import RUNNERS


@RUNNERS.register_module()
class QuietConsoleRunner(Runner):
    """mmengine's Runner whose console shows errors only, as on ranks other than 0; its log
    file is complete. The demo's console shows ``ConsoleProgressHook``'s lines instead.

    Example:
        >>> runner_type = 'QuietConsoleRunner'  # MMSeg's tools/train.py builds it
        >>> custom_hooks = [dict(type='ConsoleProgressHook', title='CDCL')]
    """

    def build_logger(self, log_level='INFO', log_file=None, **kwargs):
        logger = super().build_logger(log_level, log_file, **kwargs)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:  # the console, not a FileHandler
                handler.setLevel(logging.ERROR)
        return logger
