import pytest
import torch
from mmseg.registry import METRICS

META = dict(
    dataset_names=['city', 'cam'],
    classes=('road', 'car', 'sky'),
    datasets=dict(city=dict(classes=('road', 'car', 'sky'), ignore_index=255),
                  cam=dict(classes=('sky', 'road'), ignore_index=9)))


def _sample(d, pred, gt):
    return dict(dataset_idx=d, pred_sem_seg=dict(data=torch.tensor([pred])),
                gt_sem_seg=dict(data=torch.tensor([gt])))


def test_per_dataset_scores_and_their_mean():
    metric = METRICS.build(dict(type='MultiDatasetIoUMetric', iou_metrics=['mIoU']))
    metric.dataset_meta = META
    metric.process({}, [
        # city: road IoU 2/4, car 1/3, sky 1/1; acc road 2/4, car 1/1, sky 1/1
        _sample(0, [[0, 0, 1, 2]], [[0, 0, 0, 2]]),
        _sample(0, [[1, 1, 7, 7]], [[1, 0, 255, 255]]),  # 255 ignored
    ])
    metric.process({}, [
        # cam: 9 is its void; sky IoU 1/2, road 2/3 -> mIoU 58.33; aAcc 3/4
        _sample(1, [[0, 1, 1, 1, 0]], [[0, 1, 1, 0, 9]]),
    ])
    scores = metric.evaluate(3)
    city_miou, cam_miou = (1 / 2 + 1 / 3 + 1) / 3 * 100, (1 / 2 + 2 / 3) / 2 * 100
    assert scores['city/mIoU'] == pytest.approx(round(city_miou, 2))
    assert scores['cam/mIoU'] == pytest.approx(round(cam_miou, 2))
    assert scores['city/mAcc'] == pytest.approx(round((1 / 2 + 1 + 1) / 3 * 100, 2))
    assert scores['city/aAcc'] == pytest.approx(round(4 / 6 * 100, 2))
    assert scores['cam/aAcc'] == pytest.approx(75.0)
    assert scores['mIoU'] == pytest.approx(round((round(city_miou, 2) + round(cam_miou, 2)) / 2,
                                                 2))
    assert set(scores) == {f'{p}{k}' for p in ('', 'city/', 'cam/')
                           for k in ('aAcc', 'mIoU', 'mAcc')}
    assert metric.dataset_meta['classes'] == ('road', 'car', 'sky')  # left as it was
