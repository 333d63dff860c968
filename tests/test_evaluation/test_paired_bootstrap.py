"""The paired bootstrap of an mIoU difference, against hand computations and MMSeg's IoUMetric."""

import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric

from mmseg_cdcl.evaluation.functional import miou_from_counts, paired_bootstrap_miou

TEN = np.full((2, 1), 10.0)  # two images, one class, 10 pixels of union each


def test_miou_from_counts_equals_mmseg_iou_metric():
    rng = np.random.default_rng(0)
    union = rng.integers(0, 50, (7, 5)).astype(float)
    union[:, 4] = 0  # a class nobody labelled or predicted: left out of the mean
    intersect = np.floor(union * rng.uniform(0, 1, union.shape))
    zeros = torch.zeros(5)
    metric = IoUMetric.total_area_to_metrics(
        torch.tensor(intersect.sum(0)), torch.tensor(union.sum(0)), zeros, zeros, ['mIoU']
    )
    expected = np.nanmean(metric['IoU']) * 100
    assert miou_from_counts(intersect, union) == pytest.approx(expected, abs=1e-9)


def test_a_better_on_every_image_excludes_zero():
    # a: 8/10 and 6/10, mIoU 70; b: 4/10 and 2/10, mIoU 30. Every resample: 40.
    result = paired_bootstrap_miou([[8.0], [6.0]], TEN, [[4.0], [2.0]], TEN)
    assert (result['difference'], result['low'], result['high']) == pytest.approx((40, 40, 40))
    assert result['excludes_zero']


def test_a_better_on_one_image_worse_on_the_other_includes_zero():
    # a: 8/10 and 2/10; b: 4/10 and 6/10. Both mIoU 50 on the two images. The resamples are
    # image 1 twice (p 1/4): 80 - 40 = +40, both images (p 1/2): 0, image 2 twice (p 1/4): -40,
    # so the 2.5 and 97.5 percentiles of 2000 resamples are -40 and +40.
    result = paired_bootstrap_miou([[8.0], [2.0]], TEN, [[4.0], [6.0]], TEN)
    assert (result['difference'], result['low'], result['high']) == pytest.approx((0, -40, 40))
    assert not result['excludes_zero']


def test_classes_missing_from_a_resample_leave_its_mean():
    # Image 1 holds class 0 only, image 2 class 1 only. a: 9/10 and 5/10, b: 3/10 and 6/10.
    # All images: (90 + 50) / 2 - (30 + 60) / 2 = 25; image 1 twice: 90 - 30 = 60;
    # image 2 twice: 50 - 60 = -10.
    union = np.array([[10.0, 0.0], [0.0, 10.0]])
    result = paired_bootstrap_miou([[9.0, 0.0], [0.0, 5.0]], union, [[3.0, 0.0], [0.0, 6.0]], union)
    assert (result['difference'], result['low'], result['high']) == pytest.approx((25, -10, 60))
    assert not result['excludes_zero']


def test_seeded_results_reproduce():
    rng = np.random.default_rng(1)
    union = rng.integers(1, 100, (2, 30, 4)).astype(float)
    intersect = np.floor(union * rng.uniform(0, 1, union.shape))
    first = paired_bootstrap_miou(intersect[0], union[0], intersect[1], union[1], seed=3)
    assert paired_bootstrap_miou(intersect[0], union[0], intersect[1], union[1], seed=3) == first
    other = paired_bootstrap_miou(intersect[0], union[0], intersect[1], union[1], seed=4)
    assert other['difference'] == first['difference']
    assert (other['low'], other['high']) != (first['low'], first['high'])
    assert first['low'] < first['difference'] < first['high']


def test_unpaired_shapes_are_refused():
    with pytest.raises(ValueError, match=r'four \(images, classes\) arrays of one shape'):
        paired_bootstrap_miou(np.ones((3, 2)), np.ones((3, 2)), np.ones((2, 2)), np.ones((2, 2)))
