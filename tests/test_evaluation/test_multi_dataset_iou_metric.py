import numpy as np
import pytest
import torch
from mmseg.registry import METRICS
from PIL import Image

META = dict(
    dataset_names=['city', 'cam'],
    classes=('road', 'car', 'sky'),
    datasets=dict(
        city=dict(classes=('road', 'car', 'sky'), ignore_index=255),
        cam=dict(classes=('sky', 'road'), ignore_index=9),
    ),
)


def _sample(d, pred, gt, img_path='x.png', **metainfo):
    sample = dict(
        dataset_idx=d, img_path=img_path, pred_sem_seg=dict(data=torch.tensor([pred])), **metainfo
    )
    if gt is not None:
        sample['gt_sem_seg'] = dict(data=torch.tensor([gt]))
    return sample


@pytest.mark.parametrize('output_dir', [False, True])
def test_per_dataset_scores_and_their_mean(output_dir, tmp_path):
    kwargs = dict(output_dir=str(tmp_path / 'out')) if output_dir else {}
    metric = METRICS.build(dict(type='MultiDatasetIoUMetric', iou_metrics=['mIoU'], **kwargs))
    metric.dataset_meta = META
    metric.process(
        {},
        [
            # city: road IoU 2/4, car 1/3, sky 1/1; acc road 2/4, car 1/1, sky 1/1
            _sample(0, [[0, 0, 1, 2]], [[0, 0, 0, 2]]),
            _sample(0, [[1, 1, 7, 7]], [[1, 0, 255, 255]]),  # 255 ignored
        ],
    )
    metric.process(
        {},
        [
            # cam: 9 is its void; sky IoU 1/2, road 2/3 -> mIoU 58.33; aAcc 3/4
            _sample(1, [[0, 1, 1, 1, 0]], [[0, 1, 1, 0, 9]]),
        ],
    )
    scores = metric.evaluate(3)
    city_miou, cam_miou = (1 / 2 + 1 / 3 + 1) / 3 * 100, (1 / 2 + 2 / 3) / 2 * 100
    assert scores['city/mIoU'] == pytest.approx(round(city_miou, 2))
    assert scores['cam/mIoU'] == pytest.approx(round(cam_miou, 2))
    assert scores['city/mAcc'] == pytest.approx(round((1 / 2 + 1 + 1) / 3 * 100, 2))
    assert scores['city/aAcc'] == pytest.approx(round(4 / 6 * 100, 2))
    assert scores['cam/aAcc'] == pytest.approx(75.0)
    assert scores['mIoU'] == pytest.approx(round((round(city_miou, 2) + round(cam_miou, 2)) / 2, 2))
    assert set(scores) == {
        f'{p}{k}' for p in ('', 'city/', 'cam/') for k in ('aAcc', 'mIoU', 'mAcc')
    }
    assert metric.dataset_meta['classes'] == ('road', 'car', 'sky')  # left as it was


def _png(path):
    return np.asarray(Image.open(path)).tolist()


def test_predictions_written_per_dataset_as_iou_metric_writes_them(tmp_path):
    metric = METRICS.build(dict(type='MultiDatasetIoUMetric', output_dir=str(tmp_path)))
    metric.dataset_meta = META
    metric.process(
        {},
        [
            _sample(0, [[0, 2], [1, 1]], [[0, 2], [1, 0]], img_path='/d/city/val/aachen_1.png'),
            _sample(
                1,
                [[1, 0], [0, 0]],
                [[1, 9], [0, 0]],
                img_path='/d/cam/val/0001.png',
                reduce_zero_label=True,
            ),
            _sample(1, [[0, 0], [1, 1]], [[0, 0], [1, 1]], img_path='/d/cam/val/0002.jpg'),
        ],
    )
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*.png')) == [
        'cam/0001.png',
        'cam/0002.png',
        'city/aachen_1.png',
    ]
    assert _png(tmp_path / 'city' / 'aachen_1.png') == [[0, 2], [1, 1]]
    assert _png(tmp_path / 'cam' / '0001.png') == [[2, 1], [1, 1]]  # +1: the file's own ids
    assert _png(tmp_path / 'cam' / '0002.png') == [[0, 0], [1, 1]]
    scores = metric.evaluate(3)
    assert (scores['city/aAcc'], scores['cam/aAcc']) == (75.0, 100.0)
    assert metric.output_dir == str(tmp_path) and metric.ignore_index == 255  # left as they were


def test_format_only_writes_predictions_of_unlabelled_images_and_scores_nothing(tmp_path):
    metric = METRICS.build(
        dict(type='MultiDatasetIoUMetric', format_only=True, output_dir=str(tmp_path))
    )
    metric.dataset_meta = META
    metric.process(
        {},
        [
            _sample(0, [[1, 2], [0, 0]], None, img_path='a.png'),
            _sample(1, [[1, 1], [0, 1]], None, img_path='b.png'),
        ],
    )
    assert metric.evaluate(2) == {}
    assert _png(tmp_path / 'city' / 'a.png') == [[1, 2], [0, 0]]
    assert _png(tmp_path / 'cam' / 'b.png') == [[1, 1], [0, 1]]


def test_format_only_needs_an_output_dir():
    with pytest.raises(
        ValueError,
        match='MultiDatasetIoUMetric: format_only=True scores '
        'nothing and writes the predictions to output_dir, '
        'which is not set',
    ):
        METRICS.build(dict(type='MultiDatasetIoUMetric', format_only=True))


SPACE = dict(
    name='label_space',
    classes=('ground', 'sky'),
    palette=[[1, 1, 1], [2, 2, 2]],
    label_maps=dict(city=[0, 255, 1], cam=[1, 0]),
)


def test_predictions_in_a_label_space_are_scored_there_with_the_labels_mapped(capsys):
    """Before: a model with a label space was scored with its label-space ids read as each
    dataset's own classes."""
    metric = METRICS.build(dict(type='MultiDatasetIoUMetric', iou_metrics=['mIoU']))
    metric.dataset_meta = META
    metric.process(
        {},
        [
            # city's labels road, road, car (ignored), sky -> ground, ground, -, sky
            _sample(0, [[0, 1, 0, 1]], [[0, 0, 1, 2]], prediction_space=SPACE),
            # cam's labels sky, road, void 9 -> sky, ground, ignored
            _sample(1, [[1, 1, 0]], [[0, 1, 9]], prediction_space=SPACE),
        ],
    )
    scores = metric.evaluate(2)
    # city: ground IoU 1/2, sky 1/2; cam: ground 0/1, sky 1/2
    assert scores['city/mIoU'] == pytest.approx(50.0)
    assert scores['cam/mIoU'] == pytest.approx(25.0)
    assert scores['city/aAcc'] == pytest.approx(round(2 / 3 * 100, 2))


def test_predictions_that_cannot_meet_their_labels_are_refused():
    metric = METRICS.build(dict(type='MultiDatasetIoUMetric', iou_metrics=['mIoU']))
    metric.dataset_meta = META
    unmapped = dict(SPACE, label_maps=dict(city=[0, 255, 1]))  # no map of cam's labels
    with pytest.raises(
        ValueError,
        match=r'MultiDatasetIoUMetric: the prediction of y.png is in the label space \(2 classes: '
        r"ground, sky\), its labels in dataset 'cam's classes \['sky', 'road'\], and the model "
        r'states no map of .cam. into that space: give model.label_space.mapping.cam',
    ):
        metric.process(
            {}, [_sample(1, [[1, 1, 0]], [[0, 1, 9]], 'y.png', prediction_space=unmapped)]
        )
    metric.process({}, [_sample(0, [[0, 1, 0]], [[0, 0, 1]], prediction_space=SPACE)])
    metric.process({}, [_sample(0, [[0, 1, 0]], [[0, 0, 1]], prediction_space=dict(name='city'))])
    with pytest.raises(
        ValueError, match=r"the predictions of dataset 'city' are in 2 label spaces"
    ):
        metric.evaluate(2)


def test_labels_of_unions_are_refused_saying_why_and_what_to_do():
    """A universal model's prediction of an image whose dataset's classes are unions of the
    universal classes: its labels cannot be put in them."""
    why = (
        "label_space.mapping.cam: class 'sky' is the union of the target classes ['ground', "
        "'sky'], so the labels of dataset 'cam' cannot be put in the target classes"
    )
    universal = dict(SPACE, label_maps=dict(city=[0, 255, 1]), unmapped=dict(cam=why))
    metric = METRICS.build(dict(type='MultiDatasetIoUMetric', iou_metrics=['mIoU']))
    metric.dataset_meta = META
    with pytest.raises(ValueError) as error:
        metric.process(
            {}, [_sample(1, [[1, 1, 0]], [[0, 1, 9]], 'y.png', prediction_space=universal)]
        )
    assert str(error.value) == (
        'MultiDatasetIoUMetric: the prediction of y.png is in the label space (2 classes: '
        "ground, sky), its labels in dataset 'cam's classes ['sky', 'road'], and "
        f"{why}. Score 'cam' in its own classes (model.test_cfg.output_space='dataset'), or "
        "give labels in the label space's classes"
    )
