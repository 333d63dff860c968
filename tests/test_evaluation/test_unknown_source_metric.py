"""UnknownSourceMetric: every route's mIoU per source dataset in one label space, and the branch
choices."""

import pytest
import torch

from mmseg_cdcl.evaluation import UnknownSourceMetric

META = dict(
    dataset_names=['a', 'c'],
    datasets=dict(a=dict(classes=('x', 'y', 'z')), c=dict(classes=('t0', 't1'))),
)
LABEL_SPACE = dict(classes=('t0', 't1'), mapping=dict(a=['t0', 't0', 't1']))


def _sample(source, chosen, label, **routes):
    sample = dict(
        source_dataset=source, dataset_name=chosen, gt_sem_seg=dict(data=torch.tensor([label]))
    )
    for route, pred in routes.items():
        sample[f'pred_{route}'] = dict(data=torch.tensor([pred]))
    return sample


def test_each_route_scored_in_the_target_classes_with_the_confusion_of_choices():
    metric = UnknownSourceMetric(label_space=LABEL_SPACE)
    metric.dataset_meta = META
    # Dataset a's labels [0, 1, 2, 255] are t0, t0, t1, ignored in the target classes.
    metric.process(
        {},
        [
            _sample(
                'a',
                'a',
                [0, 1, 2, 255],
                auto=[0, 0, 1, 1],
                oracle=[0, 0, 1, 1],
                ensemble=[0, 1, 1, 0],
                branch_a=[0, 0, 1, 1],
                branch_b=[1, 1, 1, 1],
            ),
            _sample(
                'a',
                'b',
                [2, 2, 0, 0],
                auto=[1, 1, 1, 1],
                oracle=[1, 1, 0, 0],
                ensemble=[1, 1, 0, 0],
                branch_a=[1, 1, 0, 0],
                branch_b=[1, 1, 1, 1],
            ),
            # c is no dataset of the model: no oracle; its labels are target ids already.
            _sample(
                'c',
                'b',
                [1, 1, 0, 255],
                auto=[1, 0, 0, 0],
                ensemble=[1, 1, 0, 1],
                branch_a=[0, 0, 0, 0],
                branch_b=[1, 0, 0, 0],
            ),
        ],
    )
    metrics = metric.compute_metrics(metric.results)
    # a, auto: target labels [0, 0, 1, -] + [1, 1, 0, 0]; predictions [0, 0, 1, -] + [1, 1, 1, 1]
    # t0: intersection 2, union 4; t1: intersection 3, union 5.
    assert metrics['a/auto/mIoU'] == pytest.approx(100 * (2 / 4 + 3 / 5) / 2, abs=0.01)
    assert metrics['a/oracle/mIoU'] == 100.0
    assert metrics['a/branch_b/mIoU'] == pytest.approx(100 * (0 + 3 / 7) / 2, abs=0.01)
    # c, auto: labels [1, 1, 0, -], predictions [1, 0, 0, -]: t0 1/2, t1 1/2.
    assert metrics['c/auto/mIoU'] == 50.0
    assert 'c/oracle/mIoU' not in metrics
    assert metrics['a/branch_accuracy'] == 50.0 and 'c/branch_accuracy' not in metrics
    assert (metrics['choice/a/a'], metrics['choice/a/b'], metrics['choice/c/b']) == (1, 1, 1)
    assert metrics['mIoU'] == pytest.approx((metrics['a/auto/mIoU'] + 50) / 2, abs=0.01)


def test_needs_the_models_routes():
    metric = UnknownSourceMetric(label_space=LABEL_SPACE)
    metric.dataset_meta = META
    with pytest.raises(KeyError, match="set the model's test_cfg.unknown_source=True"):
        metric.process(
            {},
            [
                dict(
                    source_dataset='a',
                    dataset_name='a',
                    pred_sem_seg={},
                    gt_sem_seg=dict(data=torch.zeros(1, 2, 2)),
                )
            ],
        )


def test_predictions_in_other_classes_than_the_metrics_are_refused():
    """A model that predicts in its label space, scored by a metric told other classes (here
    none: the first dataset's): never compared."""
    metric = UnknownSourceMetric()
    metric.dataset_meta = dict(dataset_names=['a'], datasets=dict(a=META['datasets']['a']))
    sample = _sample('a', 'a', [0, 1], auto=[0, 1])
    sample['prediction_space'] = dict(name='label_space', classes=('t0', 't1'))
    with pytest.raises(
        ValueError,
        match=r"scores in the classes \['x', 'y', 'z'\] \(its label_space\) but the model "
        r"predicts in \['t0', 't1'\]: give the metric the model's label_space",
    ):
        metric.process({}, [sample])
