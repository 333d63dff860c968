"""Every dataset's head on every dataset's labelled images: the cross-dataset confusions from
which :mod:`.label_space_learning` learns a label space (UniDet's evaluation, Zhou et al., arXiv
2102.13086; per-head confusion histograms as Ma et al., arXiv 2407.10534), and the mIoU of each
dataset's own branch in a label space."""

from contextlib import contextmanager
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmseg.models.segmentors import EncoderDecoder

from ..models.layers import DatasetBranches, dataset_context
from ..models.utils import LabelSpace

BN_CHOICES = ('image', 'head')  # whose DSBN branch normalises: the image's dataset's, the head's


@contextmanager
def crossed_branches(model, norm: int, head: int):
    """Forwards inside run dataset ``norm``'s branches of every per-dataset module but the
    classifiers (DSBN, per-dataset statistics) and dataset ``head``'s heads and classifiers."""
    norms = [m for m in model.aware_modules() if not isinstance(m, DatasetBranches)]
    with model.dataset(head), dataset_context(model, norm, norms):
        yield


def predict_with(model, inputs, samples: list, norm: int, head: int) -> torch.Tensor:
    """``(N, H, W)`` predictions of dataset ``head``'s head on ``norm``'s DSBN branch, at the
    samples' original size (MMSeg's ``predict``, routed by :func:`crossed_branches`)."""
    with crossed_branches(model, norm, head):
        results = EncoderDecoder.predict(model, inputs, samples)
    return torch.stack([r.pred_sem_seg.data[0] for r in results])


def confusion(
    labels: torch.Tensor,
    predictions: torch.Tensor,
    num_labels: int,
    num_predictions: int,
    ignore_index: int,
) -> np.ndarray:
    """``(num_labels, num_predictions)`` pixel counts; pixels labelled ``ignore_index`` left
    out."""
    keep = labels != ignore_index
    if (labels[keep] >= num_labels).any():
        raise ValueError(
            f'a label {int(labels[keep].max())} is not one of the {num_labels} '
            f'classes (ignore_index={ignore_index})'
        )
    index = labels[keep].long() * num_predictions + predictions[keep].long()
    return (
        torch.bincount(index.cpu(), minlength=num_labels * num_predictions)
        .view(num_labels, num_predictions)
        .numpy()
    )


def _batches(model, loader, datasets: Sequence[int], max_images: Optional[int]):
    """The loader's images of ``datasets``, one by one: (dataset, inputs, sample)."""
    seen = dict.fromkeys(datasets, 0)
    for batch in loader:
        data = model.data_preprocessor(batch, False)
        indices = model.dataset_indices(data['data_samples'], len(data['inputs']))
        for i, d in enumerate(indices):
            if d in seen and (max_images is None or seen[d] < max_images):
                seen[d] += 1
                yield d, data['inputs'][i : i + 1], data['data_samples'][i]
        if max_images is not None and all(n >= max_images for n in seen.values()):
            break


@torch.no_grad()
def cross_dataset_confusions(
    model, loader, datasets: Sequence[int], max_images: Optional[int] = None
) -> dict:
    """Every head of ``datasets`` on every labelled image of them, with both BN choices.

    Returns:
        dict: ``images`` (per dataset index, images counted) and ``confusions``: per BN choice
        (:data:`BN_CHOICES`), per images' dataset ``a`` and head's dataset ``b``, the
        ``(K_a, K_b)`` pixel counts (label of a, prediction of b). With ``a == b`` both choices
        are the dataset's own branch.
    """
    classes = model.classes_per_dataset()
    confusions = {
        bn: {
            a: {b: np.zeros((classes[a], classes[b]), np.int64) for b in datasets} for a in datasets
        }
        for bn in BN_CHOICES
    }
    images = dict.fromkeys(datasets, 0)
    for a, inputs, sample in _batches(model, loader, datasets, max_images):
        images[a] += 1
        labels = sample.gt_sem_seg.data[0]
        for b in datasets:
            for bn, norm in zip(BN_CHOICES, (a, b)):
                if bn == 'image' or a != b:  # a's head on a's images: one branch, both choices
                    counts = confusion(
                        labels,
                        predict_with(model, inputs, [sample], norm, b)[0],
                        classes[a],
                        classes[b],
                        model.dataset_ignore_index[a],
                    )
                confusions[bn][a][b] += counts
    return dict(images=images, confusions=confusions)


@torch.no_grad()
def label_space_mious(
    model,
    loader,
    datasets: Sequence[int],
    spaces: Dict[str, LabelSpace],
    max_images: Optional[int] = None,
) -> Dict[str, Dict[int, float]]:
    """mIoU (%) of each dataset's own branch in each label space: its probabilities summed
    into the target classes, its labels mapped to them (as ``model.label_space`` predicts)."""
    counts = {
        s: {d: np.zeros((len(space.classes),) * 2, np.int64) for d in datasets}
        for s, space in spaces.items()
    }
    for d, inputs, sample in _batches(model, loader, datasets, max_images):
        with model.dataset(d):
            logits = EncoderDecoder.predict(model, inputs, [sample])[0].seg_logits.data
        for s, space in spaces.items():
            predictions = space.probabilities(logits[None], d).argmax(1)[0]
            labels = space.labels(sample.gt_sem_seg.data[0], d)
            counts[s][d] += confusion(
                labels, predictions, len(space.classes), len(space.classes), 255
            )
    return {s: {d: miou(c) for d, c in per.items()} for s, per in counts.items()}


def kept_pixels(counts: np.ndarray, table: Sequence[int]) -> float:
    """Share of the labelled pixels of a dataset's own confusion whose class a label space's
    ``table`` maps to a target (not 255)."""
    rows = np.asarray(counts).sum(1)
    return float(rows[np.asarray(table) != 255].sum() / max(rows.sum(), 1))


def miou(counts: np.ndarray) -> float:
    """mIoU (%) of a confusion, over the classes labelled or predicted (MMSeg's IoUMetric)."""
    inter = np.diag(counts).astype(np.float64)
    union = counts.sum(0) + counts.sum(1) - inter
    return float(np.mean(inter[union > 0] / union[union > 0]) * 100) if union.any() else np.nan
