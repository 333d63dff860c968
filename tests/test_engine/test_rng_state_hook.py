"""RNGStateHook restores the random states a checkpoint holds, on the GPUs there are."""

import random

import numpy as np
import torch
from mmengine.logging import MMLogger

from mmseg_cdcl.engine.hooks import RNGStateHook


def test_states_round_trip_through_a_checkpoint():
    hook, checkpoint = RNGStateHook(), {}
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    hook.before_save_checkpoint(None, checkpoint)
    expected = torch.rand(2), np.random.rand(2), random.random()
    torch.manual_seed(4), np.random.seed(4), random.seed(4)
    hook.after_load_checkpoint(None, checkpoint)
    hook.before_train(None)
    assert torch.equal(torch.rand(2), expected[0])
    assert np.array_equal(np.random.rand(2), expected[1]) and random.random() == expected[2]


def test_a_resume_that_sees_fewer_gpus_restores_those_it_sees(monkeypatch, capsys):
    """A checkpoint of a process that saw 2 GPUs, resumed where 1 is visible: set_rng_state_all
    failed on the missing device; now GPU 0 gets its state and the rest is reported."""
    restored = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(
        torch.cuda, 'set_rng_state', lambda state, device: restored.append((device, state.tolist()))
    )
    hook = RNGStateHook()
    checkpoint = dict(
        rng_states=dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state(),
            cuda=[torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)],
        )
    )
    hook.after_load_checkpoint(None, checkpoint)
    MMLogger.get_instance('rng_state_test')
    hook.before_train(None)
    assert restored == [(0, [1])]
    assert (
        'RNGStateHook: the checkpoint holds the random states of 2 GPUs and this process '
        'sees 1: the random state of GPU 1 is not restored'
    ) in capsys.readouterr().out
