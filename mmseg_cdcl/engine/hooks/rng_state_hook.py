"""Random number generator states in checkpoints, for resumes that repeat the run exactly."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves the python, numpy and torch (CPU and CUDA) random states with every checkpoint
    and restores them when training resumes from it, so that dropout and any other random draw
    of the training process continue as in the uninterrupted run. (Data augmentations have
    their own per-sample seeds, see ``MultiDatasetSampler``.)

    Example:
        >>> custom_hooks = [dict(type='RNGStateHook')]
    """
    priority = 'VERY_LOW'

    def __init__(self):
        self._resumed_states = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_states'] = dict(
            python=random.getstate(), numpy=np.random.get_state(),
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Applied when training starts: Runner.resume may reseed after loading.
        self._resumed_states = checkpoint.get('rng_states')

    def before_train(self, runner) -> None:
        states, self._resumed_states = self._resumed_states, None
        if states is None:
            return
        random.setstate(states['python'])
        np.random.set_state(states['numpy'])
        torch.set_rng_state(states['torch'])
        if states['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states['cuda'])
