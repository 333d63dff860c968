"""DDP's gradient averaging, for updates in which some dataset's branches have no gradient."""

import torch
from mmengine.dist import all_reduce, all_reduce_params, get_world_size


def average_gradients(module: torch.nn.Module) -> None:
    """Average the gradients over the processes, as DDP does. Parameters without a gradient
    (branches of datasets absent from the update) must be the same in every process.

    ``DATTrainLoop`` back-propagates such updates outside DDP's reducer, which would wait for
    the absent datasets' gradients, and calls this before the optimizer step.

    Args:
        module (nn.Module): The model, unwrapped.

    Raises:
        RuntimeError: some parameters have a gradient in some processes only; names them.
    """
    named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    if not params:
        return
    has_grad = torch.tensor(
        [p.grad is not None for p in params], dtype=torch.int32, device=params[0].device
    )
    all_reduce(has_grad)
    world_size = get_world_size()
    if not torch.all((has_grad == 0) | (has_grad == world_size)):
        names = [
            name for (name, _), count in zip(named, has_grad.tolist()) if 0 < count < world_size
        ]
        raise RuntimeError(
            f'DATTrainLoop: {len(names)} parameters have gradients in some '
            f'processes only (e.g. {names[:3]}): every process must draw '
            'samples of the same datasets in an iteration'
        )
    all_reduce_params([p.grad for p in params if p.grad is not None], op='mean')
