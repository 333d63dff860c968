"""A new camera's branch against the routes a model had before it: per-image counts of each route
on the same labelled images, and the paired bootstrap interval of each difference.

``tools/run_demo.py`` measures the branch it adds for the generator's CamVid this way.
"""

from typing import Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
from mmseg.evaluation import IoUMetric
from torch import nn

from .functional import miou_from_counts, paired_bootstrap_miou


def route_counts(
    model: nn.Module,
    batches: Iterable[dict],
    routes: Sequence[str],
    num_classes: int,
    chooser: Optional[Sequence[str]] = None,
) -> Dict[str, list]:
    """Each route's per-image intersection and union on labelled images.

    Args:
        model (nn.Module): A ``CDCLEncoderDecoder`` whose predictions are in the labels'
            classes (its ``label_space``).
        batches (Iterable[dict]): A test dataloader's batches (labels in those classes).
        routes (Sequence[str]): Dataset branches of the model, ``'auto'`` or ``'ensemble'``.
        num_classes (int): Classes of the labels.
        chooser (Sequence[str], optional): Branches among which the route ``'auto of
            <chooser>'`` picks per image by DSBN statistics: auto as a model of only those
            branches chooses (the branches' statistics do not depend on the others).

    Returns:
        dict: ``{route: [intersections (images, classes), unions (images, classes)]}``.
    """
    counts = {route: [[], []] for route in routes}
    if chooser is not None:
        chosen = counts[f'auto of {"+".join(chooser)}'] = [[], []]
        chooser_idx = [model.dataset_index(name) for name in chooser]
    saved = model.default_dataset
    model.eval()
    try:
        for batch in batches:
            data = model.data_preprocessor(batch, False)
            labels = [s.gt_sem_seg.data.squeeze(0) for s in data['data_samples']]
            per_route = {}
            for route in routes:
                auto = route in ('auto', 'ensemble')
                for sample in data['data_samples']:
                    sample.set_metainfo(
                        dict(dataset_name=None if auto else route, dataset_idx=None)
                    )
                model.default_dataset = route if auto else None
                with torch.no_grad():
                    results = model.predict(data['inputs'], data['data_samples'])
                per_route[route] = [
                    _counts(r.pred_sem_seg.data.squeeze(0), label, num_classes)
                    for r, label in zip(results, labels)
                ]
                for k in (0, 1):
                    counts[route][k] += [c[k] for c in per_route[route]]
            if chooser is not None:
                with torch.no_grad():
                    distances = model.branch_selector.distances(model, data['inputs'])
                picks = distances[:, chooser_idx].argmin(1).tolist()
                for i, pick in enumerate(picks):
                    image = _counts_of(
                        model, data, labels, i, chooser[pick], num_classes, per_route
                    )
                    for k in (0, 1):
                        chosen[k].append(image[k])
    finally:
        model.default_dataset = saved
    return {route: [np.stack(c[0]), np.stack(c[1])] for route, c in counts.items()}


def _counts(pred: torch.Tensor, label: torch.Tensor, num_classes: int):
    i, u, _, _ = IoUMetric.intersect_and_union(pred.to(label), label, num_classes, 255)
    return i.numpy(), u.numpy()


def _counts_of(model, data, labels, i, branch, num_classes, per_route):
    """Image i's counts on ``branch``: the route's if measured, else predicted here."""
    if branch in per_route:
        return per_route[branch][i]
    sample = data['data_samples'][i]
    sample.set_metainfo(dict(dataset_name=branch, dataset_idx=None))
    with torch.no_grad():
        result = model.predict(data['inputs'][i : i + 1], [sample])[0]
    return _counts(result.pred_sem_seg.data.squeeze(0), labels[i], num_classes)


def compare_routes(counts: Mapping[str, list], reference: str, seed: int = 0, **bootstrap) -> dict:
    """mIoU of each route and, for ``reference`` against each other, the paired bootstrap of
    the difference (:func:`paired_bootstrap_miou`; ``bootstrap``: its ``num_resamples`` and
    ``level``)."""
    scores = {route: round(float(miou_from_counts(*c)), 2) for route, c in counts.items()}
    intervals = {
        route: paired_bootstrap_miou(*counts[reference], *c, seed=seed, **bootstrap)
        for route, c in counts.items()
        if route != reference
    }
    return dict(mIoU=scores, intervals=intervals)


def _signed(x):
    return f'{x:+.2f}'.replace('-', '−')


def route_comparison_markdown(
    comparison: dict, reference: str, titles: Mapping[str, str], level: float = 0.95
) -> str:
    """A table: each route's mIoU and ``reference`` − route with its interval (**bold** where
    it excludes 0)."""
    rows = [
        f'| route | mIoU | {titles.get(reference, reference)} − route ({level:.0%} interval) |',
        '|---|---|---|',
    ]
    for route, miou in comparison['mIoU'].items():
        cell = ''
        if route != reference:
            r = comparison['intervals'][route]
            difference = _signed(r['difference'])
            cell = (
                f'{f"**{difference}**" if r["excludes_zero"] else difference} '
                f'({_signed(r["low"])} to {_signed(r["high"])})'
            )
        rows.append(f'| {titles.get(route, route)} | {miou:.2f} | {cell} |')
    return '\n'.join(rows) + '\n'
