"""CDCL's objective over datasets: L = Σ_i w_i·L_i, each dataset's losses weighted and named
by dataset (``'<dataset>.<head>.<loss>'``), so that mmengine's ``parse_losses`` sums exactly
L and logs each term."""

from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MessageHub
from torch import Tensor


def dataset_loss_weights(
    loss_weights: Optional[Union[Sequence[float], Dict[str, float]]], dataset_names: Sequence[str]
) -> List[float]:
    """w_i of each dataset, from a list or a dict by name (1 for a dataset it leaves out;
    1 for every dataset if None)."""
    names = list(dataset_names)
    if loss_weights is None:
        return [1.0] * len(names)
    if isinstance(loss_weights, dict):
        unknown = set(loss_weights) - set(names)
        if unknown:
            raise ValueError(
                f'loss_weights names unknown datasets {sorted(unknown)}; the datasets are {names}'
            )
        return [float(loss_weights.get(name, 1.0)) for name in names]
    if len(loss_weights) != len(names):
        raise ValueError(
            f'loss_weights has {len(loss_weights)} entries but there are '
            f'{len(names)} datasets {names}'
        )
    return [float(v) for v in loss_weights]


def weighted_dataset_losses(
    per_dataset: Dict[int, dict], dataset_names: Sequence[str], loss_weights: Sequence[float]
) -> dict:
    """Each dataset's losses, named ``'<dataset>.<head>.<loss>'`` and scaled by its w_i.

    Args:
        per_dataset (dict): Each dataset index's losses, named as MMSeg names them.
        dataset_names (Sequence[str]): Name of each dataset.
        loss_weights (Sequence[float]): w_i of each dataset.
    """
    weighted = {}
    for d, losses in per_dataset.items():
        weight = loss_weights[d]
        for key, value in losses.items():
            if 'loss' in key and weight != 1:
                value = [v * weight for v in value] if isinstance(value, list) else value * weight
            weighted[f'{dataset_names[d]}.{key}'] = value
    return weighted


def parse_dataset_losses(
    losses: dict, dataset_names: Sequence[str], parse: Callable[[dict], Tuple[Tensor, dict]]
) -> Tuple[Tensor, dict]:
    """mmengine's sum of the losses (``parse``: ``BaseModel.parse_losses``), plus each
    dataset's total in the log; raises on a non-finite loss before any weight is updated.

    Raises:
        FloatingPointError: names the dataset, the loss and the iteration.
    """
    # mmengine sums every term whose name contains 'loss': dataset names must not count.
    index = {name: d for d, name in enumerate(dataset_names)}
    indexed = {}
    for key, value in losses.items():
        name, _, rest = key.partition('.')
        indexed[f'{index[name]}.{rest}' if name in index and rest else key] = value
    loss, indexed_vars = parse(indexed)
    log_vars, totals = {}, {}
    for key, value in indexed_vars.items():
        d, _, rest = key.partition('.')
        if d.isdigit() and rest:
            name = dataset_names[int(d)]
            log_vars[f'{name}.{rest}'] = value
            if 'loss' in rest:
                totals[f'{name}.loss'] = totals.get(f'{name}.loss', 0) + value
        else:
            log_vars[key] = value
    log_vars.update(totals)
    if not torch.isfinite(loss):
        bad = [f'{k}={float(v)}' for k, v in log_vars.items() if '.' in k and not torch.isfinite(v)]
        iteration = MessageHub.get_current_instance().get_info('iter', -1) + 1
        datasets = sorted({k.split('.')[0] for k in bad})
        raise FloatingPointError(
            f'non-finite loss at iteration {iteration} for dataset(s) {datasets}: '
            + ', '.join(bad)
            + '; no weights were updated with it'
        )
    return loss, log_vars
