"""A universal model against per-dataset heads: the per-image counts behind the comparisons are
those of MMSeg's metric, and a route's predictions are put in the labels' classes or refused."""

import time

import numpy as np
import pytest
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner
from mmseg.registry import MODELS

from conftest import REPO, small_cdcl_cfg
from mmseg_cdcl.evaluation.functional import miou_from_counts
from mmseg_cdcl.evaluation.universal_comparison import (
    into_classes,
    load_model,
    own_classes_counts,
    universal_classes_counts,
)
from mmseg_cdcl.testing import shrink_datasets, unformatted

U = ('v', 'w', 'x', 'y', 'z')
SPACES = f'{REPO}/configs/_base_/label_spaces/universal_cityscapes_camvid.py'


def _model(classes, mapping, universal=True, dataset_classes=None):
    cfg = small_cdcl_cfg(
        num_classes=(5, 3),
        label_space=dict(classes=classes, mapping=mapping, dataset_classes=dataset_classes),
        universal_head=universal,
    )
    return MODELS.build(ConfigDict(cfg))


def test_predictions_into_the_labels_classes():
    a = dict(a=U, b=('p', 'q', 'r'))
    # the labels' classes are the space's: as they are
    same = _model(U, dict(a=list(U), b=[['v', 'w'], ['x'], ['y', 'z']]), dataset_classes=a)
    assert into_classes(same, U, 'a')[:6].tolist() == [0, 1, 2, 3, 4, 255]
    # a finer space (a learned one) holding each of a's classes as one class of its own:
    # the inverse of a's map; the others are none of the labels' classes
    finer = ('x', 'v', 'only b', 'w', 'y', 'z')
    learned = _model(finer, dict(a=list(U), b=[['v', 'w'], ['only b'], ['x', 'y', 'z']]), True, a)
    assert into_classes(learned, U, 'a')[:7].tolist() == [2, 0, 255, 1, 3, 4, 255]
    # a coarser space (per-dataset heads' many-to-one): refused
    coarse = _model(
        ('vw', 'xyz'), dict(a=['vw', 'vw', 'xyz', 'xyz', 'xyz'], b=['vw', 'xyz', None]), False, a
    )
    with pytest.raises(
        ValueError, match=r'the label space \(2 classes\) cannot be put in the 5 classes of the'
    ):
        into_classes(coarse, U, 'a')


def _test(cfg, checkpoint, work_dir):
    cfg = unformatted(Config(cfg.to_dict()))
    cfg.update(work_dir=str(work_dir), load_from=checkpoint)
    cfg.experiment_name = cfg.visualizer.name = f'universal_counts_{time.time_ns()}'
    cfg.default_hooks.pop('checkpoint', None)
    return Runner.from_cfg(cfg).test()


@pytest.mark.slow
def test_counts_are_the_metrics(trained_universal, data_cwd, tmp_path, monkeypatch):
    """The comparisons' mIoU from per-image counts equal MultiDatasetIoUMetric's through
    tools/test.py's Runner: each dataset in its own classes, CamVid's images in the 19."""
    monkeypatch.chdir(data_cwd)
    checkpoint = str(trained_universal / 'iter_2.pth')
    cfg = Config.fromfile(str(trained_universal / 'config.py'))
    shrink_datasets(cfg, (64, 64))
    cfg.default_hooks.pop('visualization', None)
    metrics = _test(cfg, checkpoint, tmp_path / 'own')
    own = own_classes_counts(
        dict(u=load_model(cfg, checkpoint, output_space='dataset')), cfg, ('cityscapes', 'camvid')
    )
    for name in ('cityscapes', 'camvid'):
        assert float(np.round(miou_from_counts(*own[name]['u']), 2)) == pytest.approx(
            metrics[f'{name}/mIoU'], abs=0.011
        )
    in_19 = Config(cfg.to_dict())
    in_19.model.test_cfg.output_space = 'label_space'
    camvid = in_19.test_dataloader.dataset.datasets.camvid
    classes = Config.fromfile(SPACES).label_space.classes
    in_19.test_dataloader.dataset.datasets.camvid = dict(
        type='BaseSegDataset',
        metainfo=dict(classes=classes),
        data_root=camvid.data_root,
        data_prefix=dict(img_path='images/val', seg_map_path='universal_annotations/val'),
        img_suffix='.png',
        seg_map_suffix='.png',
        pipeline=camvid.pipeline,
    )
    metrics = _test(in_19, checkpoint, tmp_path / 'in_19')
    model = load_model(in_19, checkpoint)
    counts = universal_classes_counts(
        dict(u=(model, 'camvid')), in_19, 'camvid', classes, 'cityscapes'
    )
    assert float(np.round(miou_from_counts(*counts['u']), 2)) == pytest.approx(
        metrics['camvid/mIoU'], abs=0.011
    )
