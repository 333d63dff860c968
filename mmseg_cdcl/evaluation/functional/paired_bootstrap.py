"""How sure a difference in mIoU is: a paired bootstrap over the evaluated images."""

from typing import Dict

import numpy as np


def miou_from_counts(intersect: np.ndarray, union: np.ndarray) -> np.ndarray:
    """mIoU (%) of per-image counts summed over images, as MMSeg's ``IoUMetric`` computes it.

    Classes whose summed union is 0 (neither labelled nor predicted) are left out of the mean.

    Args:
        intersect (np.ndarray): ``(..., images, classes)`` pixels of each class predicted and
            labelled (``IoUMetric.intersect_and_union``'s ``area_intersect`` per image).
        union (np.ndarray): The same shape: ``area_union`` per image.

    Returns:
        np.ndarray: ``(...)`` mIoU in percent.
    """
    total_i, total_u = np.sum(intersect, axis=-2), np.sum(union, axis=-2)
    iou = np.divide(total_i, total_u, out=np.full(total_u.shape, np.nan), where=total_u > 0)
    return np.nanmean(iou, axis=-1) * 100


def paired_bootstrap_miou(
    intersect_a: np.ndarray,
    union_a: np.ndarray,
    intersect_b: np.ndarray,
    union_b: np.ndarray,
    num_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Dict[str, float]:
    """mIoU(a) − mIoU(b) on the same images and its paired bootstrap percentile interval.

    Each resample draws as many images as there are, with replacement, and recomputes both
    models' mIoU from the summed counts of the drawn images (each image's counts for both
    models, so the models stay paired); the interval is the ``(1 ± level) / 2`` percentiles of
    the resampled differences. It measures how much the difference depends on which images
    were evaluated, not how much it would change with another training run.

    Example:
        >>> union = np.full((2, 1), 10.)  # two images, one class
        >>> result = paired_bootstrap_miou([[8.], [6.]], union, [[4.], [2.]], union, seed=0)
        >>> result['difference'], result['low'], result['high']  # 70 - 30, every resample 40
        (40.0, 40.0, 40.0)

    Args:
        intersect_a, union_a (np.ndarray): ``(images, classes)`` counts of model a.
        intersect_b, union_b (np.ndarray): The same images' counts of model b, in the same
            order.
        num_resamples (int): Bootstrap resamples.
        seed (int): Seed of the resampling (a ``numpy.random.Generator``): equal arguments
            give equal results.
        level (float): Coverage of the interval.

    Returns:
        dict: ``difference`` (on all images), ``low``, ``high``, ``excludes_zero``,
        ``num_images``, ``num_resamples``, ``seed``, ``level``.
    """
    counts = [np.asarray(c, np.float64) for c in (intersect_a, union_a, intersect_b, union_b)]
    shapes = {c.shape for c in counts}
    if len(shapes) != 1 or counts[0].ndim != 2 or counts[0].shape[0] == 0:
        raise ValueError(
            'paired_bootstrap_miou: expected four (images, classes) arrays of one '
            f'shape with at least one image, got shapes {[c.shape for c in counts]}'
        )
    if not 0 < level < 1:
        raise ValueError(f'paired_bootstrap_miou: level must be in (0, 1), got {level}')
    num_images = counts[0].shape[0]
    draws = np.random.default_rng(seed).integers(0, num_images, (num_resamples, num_images))
    # How often each image is drawn in each resample: the summed counts are weights @ counts.
    weights = np.zeros((num_resamples, num_images))
    np.add.at(weights, (np.arange(num_resamples)[:, None], draws), 1)
    i_a, u_a, i_b, u_b = (weights @ c for c in counts)
    resampled = miou_from_counts(i_a[:, None], u_a[:, None]) - miou_from_counts(
        i_b[:, None], u_b[:, None]
    )
    low, high = np.percentile(resampled, [50 * (1 - level), 50 * (1 + level)])
    difference = miou_from_counts(*counts[:2]) - miou_from_counts(*counts[2:])
    return dict(
        difference=float(difference),
        low=float(low),
        high=float(high),
        excludes_zero=bool(low > 0 or high < 0),
        num_images=num_images,
        num_resamples=num_resamples,
        seed=seed,
        level=level,
    )
