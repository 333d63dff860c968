from .progress_bar_hook import ProgressBarHook
from .rng_state_hook import RNGStateHook

__all__ = ['ProgressBarHook', 'RNGStateHook']
