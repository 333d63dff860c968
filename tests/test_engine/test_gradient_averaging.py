"""average_gradients averages over processes as DDP does, and names the parameters whose
gradient only some processes have."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def _model() -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1))
    model[0].requires_grad_(False)  # frozen, as a frozen stem: no gradient in any process
    return model


def _in_process(rank: int, init: str, results) -> None:
    from mmseg_cdcl.engine.loops.gradient_averaging import average_gradients

    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=2)
    try:
        model = _model()
        model[1].weight.grad = torch.full((2, 2), float(rank + 1))  # 1 and 2: mean 1.5
        model[1].bias.grad = torch.full((2,), 4.0 * rank)  # 0 and 4: mean 2
        average_gradients(model)
        averaged = (
            model[1].weight.grad.tolist(),
            model[1].bias.grad.tolist(),
            model[2].weight.grad,
        )
        if rank == 0:  # a branch only rank 0 used
            model[2].weight.grad = torch.ones(1, 2)
        try:
            average_gradients(model)
            error = None
        except RuntimeError as e:
            error = str(e)
        results[rank] = (averaged, error)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gradients_are_averaged_and_partial_ones_named(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_in_process, args=(f'file://{tmp_path}/init', results), nprocs=2)
    for rank in (0, 1):
        averaged, error = results[rank]
        assert averaged == ([[1.5, 1.5], [1.5, 1.5]], [2.0, 2.0], None)
        assert error == (
            'DATTrainLoop: 1 parameters have gradients in some processes only '
            "(e.g. ['2.weight']): every process must draw samples of the same "
            'datasets in an iteration'
        )
