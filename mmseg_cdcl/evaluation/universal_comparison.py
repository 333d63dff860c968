"""A universal model (one classifier of the universal classes, ``universal_head=True``) against
a CDCL model of per-dataset heads, on the same labelled images, with the paired bootstrap
interval of each difference (:mod:`.route_comparison`):

1. :func:`own_classes_counts`: each dataset's mIoU in its own classes (the universal model's
   probabilities summed over each class's universal classes, ``output_space='dataset'``);
2. :func:`universal_classes_counts`: the mIoU in the universal classes on one dataset's
   images whose labels are in them (the demo data's ``--universal-labels``): a route's
   prediction is mapped into the labels' classes (:func:`into_classes`), so that a universal
   model of a learned space (its classes not the labels') is scored as the hand-written one.

``tools/analysis/universal_label_space.py`` is the command line; docs/universal_label_space.md
says what the numbers establish.
"""

import copy
from typing import Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmseg.evaluation import IoUMetric
from mmseg.registry import MODELS
from torch import nn

from ..apis.checkpoint import load_cdcl_checkpoint
from .route_comparison import labelled_batches

IGNORE = 255


def load_model(
    cfg: Config, checkpoint: str, label_space: Optional[dict] = None, **test_cfg
) -> nn.Module:
    """``cfg``'s CDCL model from ``checkpoint`` (through :func:`load_cdcl_checkpoint`), in eval
    mode, predicting whole images; ``label_space`` replaces the config's, ``test_cfg`` updates
    its ``test_cfg`` (e.g. ``output_space='dataset'``)."""
    model_cfg = copy.deepcopy(cfg.model)
    if label_space is not None:
        model_cfg.label_space = label_space
    model_cfg.test_cfg = dict(model_cfg.get('test_cfg') or {}, mode='whole', **test_cfg)
    model = MODELS.build(model_cfg)
    load_cdcl_checkpoint(model, checkpoint)
    return model.eval()


def into_classes(model: nn.Module, classes: Sequence[str], dataset: str) -> np.ndarray:
    """The look-up table (256 entries) taking the ids of the model's label space into
    ``classes``, the labels' (IGNORE: none of them, scored as a miss). The same classes: the
    identity; else the inverse of ``dataset``'s map into the label space, where ``dataset``'s
    classes are ``classes`` and each of them is one label-space class of its own (a learned
    universal space holds the finer dataset's classes so).

    Raises:
        ValueError: the space has no such map: its predictions cannot be put in ``classes``.
    """
    space = model.label_space
    lut = np.full(256, IGNORE, np.int64)
    if tuple(space.classes) == tuple(classes):
        lut[: len(classes)] = np.arange(len(classes))
        return lut
    d = model.dataset_index(dataset)
    own = model.dataset_classes.get(dataset)
    try:
        table = space.table(d) if own is not None and tuple(own) == tuple(classes) else None
    except ValueError:  # a class of the dataset is a union of label-space classes
        table = None
    targets = [t for t in table or () if t != IGNORE]
    if table is None or len(set(targets)) != len(targets):
        raise ValueError(
            f'the label space ({len(space.classes)} classes) cannot be put in the '
            f"{len(classes)} classes of the labels: dataset '{dataset}' of the model does not "
            'have those classes, each one label-space class of its own'
        )
    for c, t in enumerate(table):
        if t != IGNORE:
            lut[t] = c
    return lut


def route_counts_in(
    model: nn.Module,
    batches: Iterable[dict],
    routes: Sequence[str],
    num_classes: int,
    lut: Optional[np.ndarray] = None,
) -> Dict[str, list]:
    """Each route's per-image intersection and union against the batches' labels, the
    predictions taken through ``lut`` (:func:`into_classes`) first.

    Args:
        model (nn.Module): A ``CDCLEncoderDecoder``.
        batches (Iterable[dict]): A test dataloader's batches.
        routes (Sequence[str]): Dataset branches of the model, ``'auto'`` or ``'ensemble'``.
        num_classes (int): Classes of the labels.
        lut (np.ndarray, optional): Prediction ids into the labels' ids. Defaults to as they
            are.

    Returns:
        dict: ``{route: [intersections (images, classes), unions (images, classes)]}``.
    """
    counts = {route: [[], []] for route in routes}
    table = None if lut is None else torch.as_tensor(lut)
    saved = model.default_dataset
    try:
        for batch in batches:
            data = model.data_preprocessor(batch, False)
            labels = [s.gt_sem_seg.data.squeeze(0) for s in data['data_samples']]
            for route in routes:
                chosen = route in ('auto', 'ensemble')
                for sample in data['data_samples']:
                    sample.set_metainfo(
                        dict(dataset_name=None if chosen else route, dataset_idx=None)
                    )
                model.default_dataset = route if chosen else None
                with torch.no_grad():
                    results = model.predict(data['inputs'], data['data_samples'])
                for result, label in zip(results, labels):
                    pred = result.pred_sem_seg.data.squeeze(0)
                    if table is not None:
                        pred = table[pred.long()]
                    i, u, _, _ = IoUMetric.intersect_and_union(
                        pred.to(label), label, num_classes, IGNORE
                    )
                    counts[route][0].append(i.numpy())
                    counts[route][1].append(u.numpy())
    finally:
        model.default_dataset = saved
    return {route: [np.stack(c[0]), np.stack(c[1])] for route, c in counts.items()}


def own_classes_counts(
    models: Mapping[str, nn.Module], cfg: Config, datasets: Sequence[str]
) -> Dict[str, Dict[str, list]]:
    """Each dataset's per-image counts in its own classes, every model on the same test images
    of ``cfg``'s test MultiDataset; compare them with
    :func:`~.route_comparison.compare_routes`.

    Args:
        models (dict): ``{title: model}``, each predicting an image of a dataset in the
            dataset's classes (per-dataset heads; a universal model with
            ``test_cfg.output_space='dataset'``).
        cfg (Config): Holds the test images (``test_dataloader``'s MultiDataset).
        datasets (Sequence[str]): Datasets of the models and of ``cfg``'s test set.

    Returns:
        dict: ``{dataset: {title: [intersections (images, classes), unions (images,
        classes)]}}``.
    """
    counts = {}
    for name in datasets:
        batches = labelled_batches(cfg, name)
        counts[name] = {}
        for title, model in models.items():
            classes = model.classes_per_dataset()[model.dataset_index(name)]
            counts[name][title] = route_counts_in(model, batches, [name], classes)[name]
    return counts


def universal_classes_counts(
    routes: Mapping[str, tuple],
    cfg: Config,
    dataset: str,
    classes: Sequence[str],
    classes_dataset: str,
) -> Dict[str, list]:
    """Every route's per-image counts in the universal classes on ``dataset``'s images of
    ``cfg``'s test MultiDataset, whose labels are in ``classes``; compare them with
    :func:`~.route_comparison.compare_routes`.

    Args:
        routes (dict): ``{title: (model, route)}``: a model with a label space (its predictions
            mapped into ``classes`` by :func:`into_classes`) and one of its routes (a dataset's
            branch, ``'auto'`` or ``'ensemble'``).
        cfg (Config): Holds the images and labels (``test_dataloader``'s MultiDataset).
        dataset (str): Their dataset in ``cfg`` (named as the models' dataset of the images).
        classes (Sequence[str]): The labels' classes (the universal ones).
        classes_dataset (str): A dataset of the models whose classes are ``classes``.

    Returns:
        dict: ``{title: [intersections (images, classes), unions (images, classes)]}``.
    """
    batches = labelled_batches(cfg, dataset)
    counts = {}
    for title, (model, route) in routes.items():
        lut = into_classes(model, classes, classes_dataset)
        counts[title] = route_counts_in(model, batches, [route], len(classes), lut)[route]
    return counts


def per_class_iou(counts: Mapping[str, list]) -> Dict[str, list]:
    """Each route's IoU (%) per class from its per-image counts (None: a class neither labelled
    nor predicted), as MMSeg's ``IoUMetric`` computes it."""
    ious = {}
    for route, (intersect, union) in counts.items():
        i, u = np.sum(intersect, axis=0), np.sum(union, axis=0)
        ious[route] = [round(float(a / b * 100), 2) if b > 0 else None for a, b in zip(i, u)]
    return ious


def per_class_markdown(
    ious: Mapping[str, list], routes: Mapping[str, str], classes: Sequence[str]
) -> str:
    """A table of the IoU of each class (rows) for ``routes`` (``{route: column title}``)."""
    rows = ['| class | ' + ' | '.join(routes.values()) + ' |', '|---' * (len(routes) + 1) + '|']
    for c, name in enumerate(classes):
        cells = ['—' if ious[r][c] is None else f'{ious[r][c]:.2f}' for r in routes]
        rows.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows) + '\n'
