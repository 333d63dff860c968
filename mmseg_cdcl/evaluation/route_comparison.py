"""A new camera's branch against the routes a model had before it: per-image counts of each route
on the same labelled images, and the paired bootstrap interval of each difference.

``tools/run_demo.py`` measures the branch it adds for the generator's CamVid this way
(:func:`compare_new_branch`), ``tools/analysis/new_camera_branch.py`` each way of adding it.
"""

import copy
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.evaluation import IoUMetric
from mmseg.registry import MODELS
from torch import nn

from ..apis.add_dataset_branch import added_dataset_cfg
from ..apis.checkpoint import load_cdcl_checkpoint
from .functional import miou_from_counts, paired_bootstrap_miou


def labelled_batches(cfg: Config, name: str, batch_size: int = 4) -> List[dict]:
    """The batches of dataset ``name`` of ``cfg``'s test MultiDataset (images and labels).

    Raises:
        KeyError: ``name`` is not one of its datasets.
    """
    loader = copy.deepcopy(cfg.test_dataloader)
    datasets = loader.dataset.datasets
    if name not in datasets:
        raise KeyError(f"'{name}' is not a dataset of the test dataloader: {list(datasets)}")
    loader.dataset.datasets = {name: datasets[name]}
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    return list(Runner.build_dataloader(loader.to_dict()))


def added_branch_model(cfg: Config, name: str, source: str, checkpoint: str) -> nn.Module:
    """``cfg``'s model (in its label space) with the dataset ``name`` that
    :func:`~mmseg_cdcl.apis.add_dataset_branch` added from ``source``, loaded from the
    checkpoint it wrote; it predicts whole images."""
    model_cfg = added_dataset_cfg(cfg, name, source).model
    model_cfg.test_cfg = dict(mode='whole')
    model = MODELS.build(model_cfg)
    load_cdcl_checkpoint(model, checkpoint)
    return model.eval()


def compare_new_branch(
    cfg: Config, name: str, source: str, checkpoint: str, seed: int = 0, **bootstrap
) -> dict:
    """A new camera's branch against the routes of the model before it, on its labelled images:
    the branch, every old branch, auto among the old branches (the model before), and auto and
    ensemble of the new model (:func:`route_counts`, :func:`compare_routes`).

    Args:
        cfg (Config): The model before, whose test MultiDataset holds ``name``'s labelled
            images, in their classes: its ``label_space``'s (as the demo's unknown-source
            config), or without one, the source's.
        name (str): The added dataset.
        source (str): The branch it was added from.
        checkpoint (str): The checkpoint :func:`~mmseg_cdcl.apis.add_dataset_branch` wrote.
        seed (int): Seed of the bootstrap; ``bootstrap``: its ``num_resamples`` and ``level``.

    Returns:
        dict: ``mIoU`` per route (the new branch, the old ones, ``'auto of <old>'``, ``'auto'``,
        ``'ensemble'``) and ``intervals`` of the new branch − each route.
    """
    old = list(cfg.model.dataset_names)
    model = added_branch_model(cfg, name, source, checkpoint)
    space = model.label_space
    num_classes = len(space.classes) if space else model.classes_per_dataset()[len(old)]
    counts = route_counts(
        model, labelled_batches(cfg, name), [name, *old, 'auto', 'ensemble'], num_classes, old
    )
    order = [name, *old, f'auto of {"+".join(old)}', 'auto', 'ensemble']
    return compare_routes({route: counts[route] for route in order}, name, seed=seed, **bootstrap)


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
