"""Test-time augmentation of CDCL models: tools/test.py --tta per dataset, every view used."""

import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

from conftest import ONE_VIEW, REPO, shrink_config, small_cdcl_cfg
from mmseg_cdcl.evaluation import UnknownSourceMetric
from mmseg_cdcl.models.layers import DSBN
from mmseg_cdcl.models.segmentors import CDCLTTAModel
from mmseg_cdcl.testing import unformatted


def _runner_cfg(data_cwd, tmp_path, tta_pipeline=None):
    """configs/cdcl_cityscapes_bdd.py at test size, as MMSeg's tools/test.py builds it (with
    --tta when ``tta_pipeline`` is given)."""
    cfg = shrink_config(
        unformatted(Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_bdd.py')))
    )
    cfg.model = small_cdcl_cfg(num_classes=(19, 19), names=('cityscapes', 'bdd100k'))
    cfg.work_dir = str(tmp_path)
    cfg.randomness = dict(seed=0)  # the same initial weights in every run
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    for dataset in cfg.test_dataloader.dataset.datasets.values():
        dataset.data_root = str(data_cwd / dataset.data_root)
    if tta_pipeline is not None:
        cfg.tta_pipeline = tta_pipeline
    if 'tta_pipeline' in cfg and tta_pipeline is not False:
        # What MMSeg's tools/test.py does with --tta.
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    return cfg


def _test(cfg):
    return Runner.from_cfg(cfg).test()


def test_tta_per_dataset_scores_as_without_tta(data_cwd, tmp_path):
    """--tta with one view per image (the test pipeline) gives each dataset's mIoU exactly as
    a run without it; the configs' own multi-scale + flip views run per dataset."""
    plain = _test(_runner_cfg(data_cwd, tmp_path / 'plain', tta_pipeline=False))
    one_view = _test(
        _runner_cfg(data_cwd, tmp_path / 'one', dict(cityscapes=ONE_VIEW, bdd100k=ONE_VIEW))
    )
    assert set(plain) >= {'cityscapes/mIoU', 'bdd100k/mIoU', 'mIoU'}
    assert one_view == plain
    cfg = _runner_cfg(data_cwd, tmp_path / 'tta')
    assert cfg.model.type == 'CDCLTTAModel'
    views = DATASETS.build(cfg.test_dataloader.dataset)[0]['data_samples']
    assert len(views) == 12 and {v.dataset_name for v in views} == {'cityscapes'}
    assert set(_test(cfg)) == set(plain)


def test_multi_dataset_refuses_one_pipeline_for_all_datasets(data_cwd, tmp_path):
    cfg = _runner_cfg(data_cwd, tmp_path, tta_pipeline=ONE_VIEW)
    with pytest.raises(
        ValueError,
        match=r'MultiDataset.pipeline must be a dict of one pipeline '
        r"per dataset \['cityscapes', 'bdd100k'\].*got a list",
    ):
        DATASETS.build(cfg.test_dataloader.dataset)


def _views(size=(32, 32)):
    """Two views of one image of unknown source: the image and its half-size version."""
    image = torch.randint(
        0, 255, (3, *size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    half = torch.nn.functional.interpolate(image[None].float(), scale_factor=0.5)[0].byte()
    data = dict(inputs=[[image], [half]], data_samples=[])
    for view in data['inputs']:
        shape = tuple(view[0].shape[1:])
        data['data_samples'].append(
            [
                SegDataSample(
                    metainfo=dict(
                        img_shape=shape,
                        ori_shape=size,
                        pad_shape=shape,
                        padding_size=[0, 0, 0, 0],
                        img_path='x.png',
                    )
                )
            ]
        )
    return data


def _distinct_branches(model):
    """Random initial weights predict one class everywhere and score the branches alike:
    classifiers of larger weights, and branch b's first statistics moved."""
    gen = torch.Generator().manual_seed(0)
    for name, param in model.named_parameters():
        if 'conv_seg' in name:
            param.data.normal_(0, 1, generator=gen)
    dsbn = next(m for m in model.modules() if isinstance(m, DSBN))
    dsbn.bns[1].running_mean += 0.2
    return model


def _auto_model(**kwargs):
    model = MODELS.build(ConfigDict(small_cdcl_cfg(default_dataset='auto', **kwargs)))
    return _distinct_branches(model).eval()


def test_merged_dataset_scores_are_the_mean_over_views():
    """Before: the merged result's dataset_scores were the last view's."""
    model = _auto_model()
    tta = CDCLTTAModel(module=model).eval()
    data = _views()
    with torch.no_grad():
        per_view = [
            model.test_step(
                dict(inputs=data['inputs'][i], data_samples=copy.deepcopy(data['data_samples'][i]))
            )[0]
            for i in range(2)
        ]
        merged = tta.test_step(data)[0]
    for name in ('a', 'b'):
        mean = (per_view[0].dataset_scores[name] + per_view[1].dataset_scores[name]) / 2
        assert merged.dataset_scores[name] == pytest.approx(mean, abs=1e-6)
    assert per_view[0].dataset_scores != per_view[1].dataset_scores  # the views disagree
    best = max(merged.dataset_scores, key=merged.dataset_scores.get)
    assert merged.dataset_name == best


def test_unknown_source_routes_are_not_scored_from_the_last_view():
    """Before: UnknownSourceMetric scored every route of the last view of each image."""
    label_space = dict(classes=['x', 'y', 'z'], mapping=dict(b=['x', 'y', 'z']))
    cfg = ConfigDict(small_cdcl_cfg(num_classes=(3, 3), label_space=label_space))
    cfg.test_cfg.unknown_source = True
    with pytest.raises(
        ValueError,
        match=r'test-time augmentation \(tools/test.py --tta\) of a '
        r'model with test_cfg.unknown_source=True',
    ):
        CDCLTTAModel(module=cfg)
    # MMSeg's own SegTTAModel cannot be told: it replaces pred_sem_seg with the merged
    # prediction and keeps the last view's routes, which the metric sees.
    metric = UnknownSourceMetric(label_space=label_space)
    metric.dataset_meta = dict(
        dataset_names=['a', 'b'],
        datasets=dict(a=dict(classes=('x', 'y', 'z')), b=dict(classes=('x', 'y', 'z'))),
    )
    last_view = dict(data=torch.tensor([[[0, 1], [2, 2]]]))
    merged = dict(
        source_dataset='a',
        dataset_name='a',
        gt_sem_seg=dict(data=torch.zeros(1, 2, 2)),
        pred_sem_seg=dict(data=torch.tensor([[[0, 1], [1, 2]]])),
        pred_auto=last_view,
        pred_oracle=last_view,
        pred_ensemble=last_view,
        pred_branch_a=last_view,
    )
    with pytest.raises(
        ValueError,
        match=r'UnknownSourceMetric: the prediction \(pred_sem_seg\) '
        r"is not auto's \(pred_auto\)",
    ):
        metric.process({}, [merged])
    metric.process({}, [dict(merged, pred_sem_seg=last_view)])  # without TTA: scored
    assert metric.results[0][0] == 'a'


def test_views_predicted_in_two_label_spaces_are_not_averaged():
    """'auto' may choose, for two views of an image, branches of datasets with other classes:
    their probabilities are of other classes and are refused, not averaged."""
    tta = CDCLTTAModel(module=_auto_model())
    views = []
    for name, classes in (('a', 5), ('b', 3)):
        view = SegDataSample(
            metainfo=dict(
                img_path='x.png',
                prediction_space=dict(name=name, classes=tuple(map(str, range(classes)))),
            )
        )
        view.seg_logits = PixelData(data=torch.zeros(classes, 2, 2))
        views.append(view)
    with pytest.raises(
        ValueError,
        match=r"the views of x.png are predicted in 2 label spaces \(\['a', 'b'\]: 'auto' chose",
    ):
        tta.merge_preds([views])
