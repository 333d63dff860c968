import os.path as osp

import numpy as np
import pytest
from mmseg.registry import DATASETS, TRANSFORMS

from mmseg_cdcl.datasets import CamVidDataset

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')]


def _cfg(root, names=('cityscapes', 'camvid')):
    splits = dict(
        cityscapes=dict(type='CityscapesDataset', data_root=osp.join(root, 'cityscapes'),
                        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')),
        bdd100k=dict(type='BDD100KDataset', data_root=osp.join(root, 'bdd100k'),
                     data_prefix=dict(img_path='images/10k/val',
                                      seg_map_path='labels/sem_seg/masks/val')),
        camvid=dict(type='CamVidDataset', data_root=osp.join(root, 'camvid'), ignore_index=250,
                    data_prefix=dict(img_path='images/val', seg_map_path='annotations/val')))
    return dict(type='MultiDataset',
                datasets={n: dict(splits[n], pipeline=PIPELINE) for n in names})


def test_samples_carry_their_dataset_and_keep_their_label_space(data_cwd):
    dataset = DATASETS.build(_cfg(str(data_cwd / 'data')))
    assert len(dataset) == 3 + 3
    assert list(dataset.dataset_range(1)) == [3, 4, 5]
    meta = dataset.metainfo
    assert meta['dataset_names'] == ['cityscapes', 'camvid']
    assert len(meta['datasets']['cityscapes']['classes']) == 19
    assert meta['datasets']['camvid']['classes'] == CamVidDataset.METAINFO['classes']
    assert meta['datasets']['camvid']['ignore_index'] == 250
    assert meta['classes'] == meta['datasets']['cityscapes']['classes']
    first, last = dataset[0]['data_samples'], dataset[5]['data_samples']
    assert (first.dataset_idx, first.dataset_name) == (0, 'cityscapes')
    assert (last.dataset_idx, last.dataset_name) == (1, 'camvid')
    assert 'camvid' in last.img_path and last.gt_sem_seg.data.max() <= 255
    assert set(np.unique(last.gt_sem_seg.data.numpy())) <= set(range(11)) | {255}


def test_empty_dataset_is_named(data_cwd, tmp_path):
    cfg = _cfg(str(data_cwd / 'data'), names=('cityscapes', 'bdd100k'))
    cfg['datasets']['bdd100k']['data_root'] = str(tmp_path)  # exists, holds nothing
    (tmp_path / 'images' / '10k' / 'val').mkdir(parents=True)
    with pytest.raises(ValueError, match=r"MultiDataset: dataset 'bdd100k' \(BDD100KDataset\) "
                                         r'found no samples under data_root='):
        DATASETS.build(cfg)


def test_datasets_must_be_named():
    with pytest.raises(TypeError, match='MultiDataset.datasets must be a non-empty dict of '
                                        'datasets by name, got list'):
        DATASETS.build(dict(type='MultiDataset', datasets=[dict(type='CityscapesDataset')]))


def test_remap_labels():
    remap = TRANSFORMS.build(dict(type='RemapLabels', mapping={0: 10, 3: 0}))
    label = np.array([[0, 3, 5, 255]], dtype=np.uint8)
    out = remap(dict(gt_seg_map=label))['gt_seg_map']
    np.testing.assert_array_equal(out, [[10, 0, 255, 255]])
    keep = TRANSFORMS.build(dict(type='RemapLabels', mapping={0: 10}, unmapped=None))
    np.testing.assert_array_equal(keep(dict(gt_seg_map=label))['gt_seg_map'],
                                  [[10, 3, 5, 255]])
    with pytest.raises(ValueError, match=r'RemapLabels.mapping must map uint8 label ids, got '
                                         r'\{300: 1\}'):
        TRANSFORMS.build(dict(type='RemapLabels', mapping={300: 1}))
