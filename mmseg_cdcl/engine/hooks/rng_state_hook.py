"""Random number generator states in checkpoints, for resumes that repeat the run exactly."""

import logging
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves the python, numpy and torch (CPU and CUDA) random states with every checkpoint
    and restores them when training resumes from it, so that dropout and any other random draw
    of the training process continue as in the uninterrupted run. (Data augmentations have
    their own per-sample seeds, see ``MultiDatasetSampler``.) ``DATTrainLoop`` adds it when the
    config has none.

    Example:
        >>> custom_hooks = [dict(type='RNGStateHook')]
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._resumed_states = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_states'] = dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        )

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
        saved_cuda = states['cuda']
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        # The states of the GPUs this process sees: a resume may see fewer (or more) than the
        # interrupted run did; a GPU without a saved state keeps its seed's.
        for device, state in enumerate(saved_cuda[:available]):
            torch.cuda.set_rng_state(state, device)
        if len(saved_cuda) > available:
            last = len(saved_cuda) - 1
            missing = f'GPU {last}' if last == available else f'GPUs {available}-{last}'
            print_log(
                f'RNGStateHook: the checkpoint holds the random states of '
                f'{len(saved_cuda)} GPUs and this process sees {available}: the random '
                f'state of {missing} is not restored',
                logger='current',
                level=logging.WARNING,
            )
