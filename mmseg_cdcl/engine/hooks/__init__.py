from .console_progress_hook import ConsoleProgressHook
from .progress_bar_hook import ProgressBarHook
from .rng_state_hook import RNGStateHook

__all__ = ['ConsoleProgressHook', 'ProgressBarHook', 'RNGStateHook']
