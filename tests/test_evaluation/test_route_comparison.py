"""A new branch against other routes: mIoU from per-image counts and paired intervals."""

import numpy as np

from mmseg_cdcl.evaluation.route_comparison import compare_routes, route_comparison_markdown


def test_compare_routes_scores_and_intervals():
    union = np.full((2, 2), 10.0)  # two images, two classes
    counts = dict(
        new=[np.array([[8.0, 6.0], [8.0, 6.0]]), union],
        old=[np.array([[4.0, 2.0], [4.0, 2.0]]), union],
    )
    result = compare_routes(counts, 'new', seed=0, num_resamples=50)
    assert result['mIoU'] == dict(new=70.0, old=30.0)
    r = result['intervals']['old']
    # equal images: every resample gives the same difference
    assert (r['difference'], r['low'], r['high'], r['excludes_zero']) == (40.0, 40.0, 40.0, True)
    assert route_comparison_markdown(result, 'new', dict(new='new branch')).splitlines()[2:] == [
        '| new branch | 70.00 |  |',
        '| old | 30.00 | **+40.00** (+40.00 to +40.00) |',
    ]
