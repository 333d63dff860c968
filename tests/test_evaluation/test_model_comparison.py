"""mmseg_cdcl.evaluation.model_comparison: mIoU from per-image counts, paired intervals, and
tables that say what is and is not established (tools/run_demo.py's results.md)."""

import numpy as np
import pytest

from mmseg_cdcl.evaluation.model_comparison import (
    comparison_markdown,
    scores_and_intervals,
    unknown_source_markdown,
)

LABELS = [
    'CDCL (DSBN + DAT)',
    'single: Cityscapes only',
    'single: BDD100K only',
    'joint: shared BN, one classifier',
]
TITLES = {'cityscapes': 'Cityscapes', 'bdd100k': 'BDD100K'}


def _counts(intersect):
    """Two images of one class, union 10 each: {image: (intersection, union)}."""
    return {
        f'img{i}.png': (np.array([float(v)]), np.array([10.0])) for i, v in enumerate(intersect)
    }


def test_scores_are_the_counts_miou_and_intervals_pair_the_reference_with_each_model():
    counts = {
        'a': dict(x=_counts([8, 6]), y=_counts([10, 10])),
        'b': dict(x=_counts([4, 2]), y=_counts([5, 5])),
    }
    metrics = {'a': {'x/mIoU': 70.0, 'y/mIoU': 100.0}, 'b': {'x/mIoU': 30.0, 'y/mIoU': 50.0}}
    scores, intervals = scores_and_intervals(
        metrics, counts, 'a', ['x', 'y'], seed=3, num_resamples=50, level=0.9
    )
    assert scores == {'a': dict(x=70.0, y=100.0), 'b': dict(x=30.0, y=50.0)}
    assert list(intervals) == ['b']
    assert intervals['b']['x']['difference'] == pytest.approx(40.0)
    # each image differs by 40 points: every resample too
    assert (intervals['b']['x']['low'], intervals['b']['x']['high']) == pytest.approx((40, 40))
    assert (intervals['b']['y']['num_resamples'], intervals['b']['y']['seed']) == (50, 3)


def test_other_images_or_a_metric_the_counts_disagree_with_are_refused():
    counts = {'a': dict(x=_counts([8, 6])), 'b': dict(x={'other.png': _counts([1])['img0.png']})}
    with pytest.raises(RuntimeError, match='b was tested on other x images than a'):
        scores_and_intervals(
            {'a': {'x/mIoU': 70.0}, 'b': {'x/mIoU': 10.0}}, counts, 'a', ['x'], seed=0
        )
    counts['b'] = dict(x=_counts([4, 2]))
    with pytest.raises(
        RuntimeError,
        match=r'b: x mIoU from per-image counts 30.000 != the '
        r"metric's 31.5",
    ):
        scores_and_intervals(
            {'a': {'x/mIoU': 70.0}, 'b': {'x/mIoU': 31.5}}, counts, 'a', ['x'], seed=0
        )


def test_results_say_what_is_and_is_not_established():
    def interval(low, high):
        return dict(
            difference=(low + high) / 2, low=low, high=high, excludes_zero=low > 0 or high < 0
        )

    scores = {label: dict(cityscapes=20.0, bdd100k=10.0) for label in LABELS}
    intervals = {
        LABELS[1]: dict(cityscapes=interval(0.5, 1.5), bdd100k=interval(2.0, 3.0)),
        LABELS[2]: dict(cityscapes=interval(-0.4, 1.2), bdd100k=interval(-2.5, -0.1)),
        LABELS[3]: dict(cityscapes=interval(-1.0, 0.2), bdd100k=interval(0.1, 0.9)),
    }
    text = comparison_markdown(
        scores, intervals, LABELS[0], TITLES, seed=0, num_resamples=2000, level=0.95
    )
    assert text.startswith(
        '| model | Cityscapes mIoU | CDCL − model (95% interval) | BDD100K '
        'mIoU | CDCL − model (95% interval) | mean mIoU |\n|---|---|'
    )
    assert '| CDCL (DSBN + DAT) | 20.00 |  | 10.00 |  | 15.00 |' in text
    assert (
        '| single: Cityscapes only | 20.00 | **+1.00** (+0.50 to +1.50) | 10.00 | '
        '**+2.50** (+2.00 to +3.00) | 15.00 |'
    ) in text
    assert (
        '| single: BDD100K only | 20.00 | +0.40 (−0.40 to +1.20) | 10.00 | '
        '**−1.30** (−2.50 to −0.10) | 15.00 |'
    ) in text
    assert (
        '- Established on these images (interval excludes 0): CDCL is better than '
        '*single: Cityscapes only* on Cityscapes and BDD100K; *joint: shared BN, one '
        'classifier* on BDD100K. CDCL is worse than *single: BDD100K only* on BDD100K.'
    ) in text
    assert (
        '- Not established (interval includes 0): CDCL against *single: BDD100K only* on '
        'Cityscapes; *joint: shared BN, one classifier* on Cityscapes.'
    ) in text
    assert '(2000 resamples, seed 0)' in text and 'trained once (seed 0)' in text


def test_unknown_source_table_has_a_row_per_source_and_dashes_for_routes_without_labels():
    metrics = {
        'cityscapes/oracle/mIoU': 41.0,
        'cityscapes/auto/mIoU': 40.5,
        'cityscapes/ensemble/mIoU': 40.0,
        'cityscapes/branch_cityscapes/mIoU': 41.0,
        'cityscapes/branch_bdd100k/mIoU': 30.0,
        'bdd100k/oracle/mIoU': 35.0,
        'bdd100k/auto/mIoU': 34.0,
        'bdd100k/ensemble/mIoU': 33.0,
        'bdd100k/branch_cityscapes/mIoU': 20.0,
        'bdd100k/branch_bdd100k/mIoU': 35.0,
        'camvid/auto/mIoU': 25.0,
        'camvid/ensemble/mIoU': 26.0,
        'camvid/branch_cityscapes/mIoU': 24.0,
        'camvid/branch_bdd100k/mIoU': 22.0,
    }
    for source, chosen in (('cityscapes', (5, 1)), ('bdd100k', (0, 6)), ('camvid', (4, 2))):
        metrics.update({f'choice/{source}/{d}': n for d, n in zip(TITLES, chosen)})
    rows = unknown_source_markdown(metrics, TITLES, 'camvid', 'CamVid (new)').splitlines()
    assert rows == [
        "| images | its dataset's branch | auto | ensemble | Cityscapes branch | BDD100K branch "
        '| auto chose Cityscapes / BDD100K |',
        '|---|---|---|---|---|---|---|',
        '| Cityscapes | 41.00 | 40.50 | 40.00 | 41.00 | 30.00 | 5 / 1 |',
        '| BDD100K | 35.00 | 34.00 | 33.00 | 20.00 | 35.00 | 0 / 6 |',
        '| CamVid (new) | — | 25.00 | 26.00 | 24.00 | 22.00 | 4 / 2 |',
    ]
