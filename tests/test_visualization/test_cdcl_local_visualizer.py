"""Each sample is drawn in its own dataset's colours, by the visualizer and by tools/test.py."""

import glob
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint
from mmengine.structures import PixelData
from mmseg.datasets import CityscapesDataset
from mmseg.registry import MODELS, VISUALIZERS
from mmseg.structures import SegDataSample

from conftest import REPO, shrink_config
from mmseg_cdcl.datasets import CamVidDataset
from mmseg_cdcl.testing import unformatted

CITY, CAM = CityscapesDataset.METAINFO, CamVidDataset.METAINFO
# What the runner gives the visualizer: a MultiDataset's metainfo.
META = dict(
    classes=CITY['classes'],
    palette=CITY['palette'],
    dataset_names=['cityscapes', 'camvid'],
    datasets=dict(cityscapes=dict(CITY, ignore_index=255), camvid=dict(CAM, ignore_index=255)),
)


def test_each_sample_is_drawn_with_its_datasets_palette(tmp_path):
    visualizer = VISUALIZERS.build(
        dict(type='CDCLSegLocalVisualizer', alpha=1.0, name='per_dataset_palette')
    )
    visualizer.dataset_meta = META
    label = torch.tensor([[[0, 1, 2, 3, 4, 5, 255]]])  # 255: not drawn
    for dataset, palette in (
        ('camvid', CAM['palette']),
        ('cityscapes', CITY['palette']),
        (None, CITY['palette']),
    ):
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        if dataset is not None:
            sample.set_metainfo(dict(dataset_name=dataset))
        out = tmp_path / f'{dataset}.png'
        visualizer.add_datasample(
            'x', np.zeros((1, 7, 3), np.uint8), sample, with_labels=False, out_file=str(out)
        )
        drawn = cv2.imread(str(out))[..., ::-1]
        assert drawn[0].tolist() == [list(c) for c in palette[:6]] + [[0, 0, 0]]
    assert visualizer.dataset_meta is META  # left as the runner set it


def test_cdcl_configs_draw_with_the_cdcl_visualizer():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_camvid.py'))
    assert cfg.visualizer.type == 'CDCLSegLocalVisualizer'
    assert cfg.visualizer.vis_backends == [dict(type='LocalVisBackend')]


def _share_drawn(drawn, image, label, palette):
    """Share of the labelled pixels of ``drawn`` that are ``image`` blended with ``palette``
    as SegLocalVisualizer blends them (alpha 0.8)."""
    colours = np.array(list(palette) + [[0, 0, 0]] * (256 - len(palette)), np.uint8)
    expected = (image * (1 - 0.8) + colours[label] * 0.8).astype(np.uint8)
    return np.mean((np.abs(drawn.astype(int) - expected) <= 1).all(-1)[label != 255])


def test_class_name_boxes_follow_the_visualizers_setting(tmp_path):
    """``with_labels`` of the config applies where MMSeg's hook calls ``add_datasample``
    without it; an explicit argument still wins."""
    image = np.full((64, 64, 3), 100, np.uint8)
    label = torch.zeros((1, 64, 64), dtype=torch.long)
    label[:, 32:] = 1
    drawn = {}
    for with_labels, kwargs in ((True, {}), (False, {}), (False, dict(with_labels=True))):
        visualizer = VISUALIZERS.build(
            dict(
                type='CDCLSegLocalVisualizer',
                with_labels=with_labels,
                name=f'boxes_{with_labels}_{len(kwargs)}',
            )
        )
        visualizer.dataset_meta = META
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        out = tmp_path / f'{with_labels}_{len(kwargs)}.png'
        visualizer.add_datasample('x', image, sample, draw_pred=False, out_file=str(out), **kwargs)
        drawn[with_labels, len(kwargs)] = cv2.imread(str(out))[..., ::-1]
    # Without boxes every pixel is its class's colour blended with the image; with them not.
    assert _share_drawn(drawn[False, 0], image, label[0].numpy(), CITY['palette']) == 1
    assert _share_drawn(drawn[True, 0], image, label[0].numpy(), CITY['palette']) < 1
    np.testing.assert_array_equal(drawn[False, 1], drawn[True, 0])


@pytest.mark.slow
def test_test_tool_show_dir_draws_each_dataset_in_its_colours(data_cwd, tmp_path):
    cfg = shrink_config(Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_camvid.py')))
    cfg.default_hooks.visualization.interval = 1  # draw every image, not every 50th
    # No class-name boxes: where they fall and how they render is the drawing library's.
    cfg.visualizer.with_labels = False
    config, checkpoint = str(tmp_path / 'config.py'), str(tmp_path / 'model.pth')
    unformatted(cfg).dump(config)
    torch.manual_seed(0)
    save_checkpoint(dict(state_dict=MODELS.build(cfg.model).state_dict(), meta={}), checkpoint)
    result = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'test.py'),
            config,
            checkpoint,
            '--work-dir',
            str(tmp_path / 'work'),
            '--show-dir',
            str(tmp_path / 'vis'),
        ],
        cwd=data_cwd,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = osp.join(data_cwd, 'data')
    drawn = 0
    for images, labels, own, other in (
        ('camvid/images/val', 'camvid/annotations/val', CAM, CITY),
        ('cityscapes/leftImg8bit/val', 'cityscapes/gtFine/val', CITY, CAM),
    ):
        for image in sorted(glob.glob(osp.join(data, images, '**', '*.png'), recursive=True)):
            name = osp.basename(image)
            label = glob.glob(
                osp.join(data, labels, '**', name.replace('leftImg8bit', 'gtFine_labelTrainIds')),
                recursive=True,
            )[0]
            [vis] = glob.glob(
                str(tmp_path / 'vis' / 'vis_data' / 'vis_image' / f'test_{name}_*.png')
            )
            img = cv2.imread(image)[..., ::-1]
            label = cv2.imread(label, cv2.IMREAD_UNCHANGED)
            gt = cv2.imread(vis)[:, : img.shape[1], ::-1]  # ground truth | prediction
            assert _share_drawn(gt, img, label, own['palette']) == 1
            assert _share_drawn(gt, img, label, other['palette']) < 0.5
            drawn += 1
    assert drawn == 3 + 3


def test_prediction_and_ground_truth_are_drawn_in_the_predictions_space(tmp_path):
    """A Cityscapes image predicted in a CamVid-classes label space: both halves in CamVid's
    colours, the Cityscapes labels mapped (before: Cityscapes' palette on CamVid ids)."""
    visualizer = VISUALIZERS.build(
        dict(type='CDCLSegLocalVisualizer', alpha=1.0, with_labels=False, name='in_its_space')
    )
    visualizer.dataset_meta = META
    space = dict(
        name='label_space',
        classes=CAM['classes'],
        palette=CAM['palette'],
        label_maps=dict(cityscapes=[3, 4] + [255] * 17),  # road, sidewalk
    )
    sample = SegDataSample(metainfo=dict(dataset_name='cityscapes', prediction_space=space))
    sample.gt_sem_seg = PixelData(data=torch.tensor([[[0, 1, 2]]]))  # road, sidewalk, building
    sample.pred_sem_seg = PixelData(data=torch.tensor([[[3, 4, 0]]]))
    out = tmp_path / 'x.png'
    visualizer.add_datasample('x', np.zeros((1, 3, 3), np.uint8), sample, out_file=str(out))
    gt, pred = np.split(cv2.imread(str(out))[..., ::-1][0], 2)
    assert pred.tolist() == [list(CAM['palette'][i]) for i in (3, 4, 0)]
    assert gt.tolist() == [list(CAM['palette'][i]) for i in (3, 4)] + [[0, 0, 0]]  # unmapped
    # labels that cannot be put in the space are not drawn (a warning says why)
    sample.set_metainfo(dict(prediction_space=dict(space, label_maps={})))
    visualizer.add_datasample('x', np.zeros((1, 3, 3), np.uint8), sample, out_file=str(out))
    assert cv2.imread(str(out)).shape == (1, 3, 3)  # the prediction alone
    assert visualizer.dataset_meta is META


def test_a_test_datasets_classes_stay_known_when_the_training_sets_metainfo_replaces_it(
    tmp_path,
):
    """tools/test.py builds the training loop after the test loop, whose metainfo replaces the
    test set's: CamVid's ground truth of the unknown-source config is still drawn in its
    classes (before: not drawn, its dataset unknown)."""
    visualizer = VISUALIZERS.build(
        dict(type='CDCLSegLocalVisualizer', alpha=1.0, with_labels=False, name='train_after_test')
    )
    visualizer.dataset_meta = META  # the test set's: cityscapes and camvid
    train = dict(
        META, dataset_names=['cityscapes'], datasets=dict(cityscapes=META['datasets']['cityscapes'])
    )
    visualizer.dataset_meta = train
    space = dict(name='label_space', classes=CAM['classes'], palette=CAM['palette'], label_maps={})
    sample = SegDataSample(metainfo=dict(dataset_name='camvid', prediction_space=space))
    sample.gt_sem_seg = PixelData(data=torch.tensor([[[0, 1]]]))
    sample.pred_sem_seg = PixelData(data=torch.tensor([[[1, 0]]]))
    out = tmp_path / 'x.png'
    visualizer.add_datasample('x', np.zeros((1, 2, 3), np.uint8), sample, out_file=str(out))
    gt, pred = np.split(cv2.imread(str(out))[..., ::-1][0], 2)
    assert gt.tolist() == [list(CAM['palette'][i]) for i in (0, 1)]
    assert pred.tolist() == [list(CAM['palette'][i]) for i in (1, 0)]
    assert visualizer.dataset_meta is train
