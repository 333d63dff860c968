import os.path as osp
import random
import re
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import DATASETS, TRANSFORMS

from mmseg_cdcl.datasets import CamVidDataset

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]


def _cfg(root, names=('cityscapes', 'camvid')):
    splits = dict(
        cityscapes=dict(
            type='CityscapesDataset',
            data_root=osp.join(root, 'cityscapes'),
            data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        ),
        bdd100k=dict(
            type='BDD100KDataset',
            data_root=osp.join(root, 'bdd100k'),
            data_prefix=dict(img_path='images/10k/val', seg_map_path='labels/sem_seg/masks/val'),
        ),
        camvid=dict(
            type='CamVidDataset',
            data_root=osp.join(root, 'camvid'),
            ignore_index=250,
            data_prefix=dict(img_path='images/val', seg_map_path='annotations/val'),
        ),
    )
    return dict(
        type='MultiDataset', datasets={n: dict(splits[n], pipeline=PIPELINE) for n in names}
    )


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
    with pytest.raises(
        ValueError,
        match=r"MultiDataset: dataset 'bdd100k' \(BDD100KDataset\) "
        r'found no samples under data_root=',
    ):
        DATASETS.build(cfg)


def test_datasets_must_be_named():
    with pytest.raises(
        TypeError,
        match='MultiDataset.datasets must be a non-empty dict of datasets by name, got list',
    ):
        DATASETS.build(dict(type='MultiDataset', datasets=[dict(type='CityscapesDataset')]))


def test_remap_labels():
    remap = TRANSFORMS.build(dict(type='RemapLabels', mapping={0: 10, 3: 0}))
    label = np.array([[0, 3, 5, 255]], dtype=np.uint8)
    out = remap(dict(gt_seg_map=label))['gt_seg_map']
    np.testing.assert_array_equal(out, [[10, 0, 255, 255]])
    keep = TRANSFORMS.build(dict(type='RemapLabels', mapping={0: 10}, unmapped=None))
    np.testing.assert_array_equal(keep(dict(gt_seg_map=label))['gt_seg_map'], [[10, 3, 5, 255]])
    with pytest.raises(
        ValueError,
        match=r'RemapLabels.mapping must map uint8 label ids, got '
        r'\{300: 1\}',
    ):
        TRANSFORMS.build(dict(type='RemapLabels', mapping={300: 1}))


@pytest.fixture
def city(data_cwd, tmp_path):
    """A private copy of the generated Cityscapes val split to break."""
    shutil.copytree(data_cwd / 'data' / 'cityscapes', tmp_path / 'cityscapes')
    images = sorted((tmp_path / 'cityscapes' / 'leftImg8bit' / 'val').rglob('*.png'))
    labels = sorted((tmp_path / 'cityscapes' / 'gtFine' / 'val').rglob('*.png'))
    return tmp_path, images, labels


def _build(root):
    return DATASETS.build(_cfg(str(root), names=('cityscapes',)))


def test_missing_data_root_is_named(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"MultiDataset: dataset 'cityscapes' "
        r'\(CityscapesDataset\): .*leftImg8bit/val.*'
        r'check its data_root=',
    ):
        _build(tmp_path / 'nowhere')


def test_image_without_label_is_named(city):
    root, images, labels = city
    labels[1].unlink()
    with pytest.raises(
        FileNotFoundError,
        match=rf"dataset 'cityscapes': image {images[1]} has "
        rf'no label file {labels[1]}',
    ):
        _build(root)


def test_image_label_size_mismatch_is_named(city):
    root, images, labels = city
    cv2.imwrite(str(labels[0]), np.zeros((10, 20), np.uint8))
    with pytest.raises(
        ValueError,
        match=rf"dataset 'cityscapes': image {images[0]} is 128x64 "
        rf'\(WxH\) but its label {labels[0]} is 20x10',
    ):
        _build(root)


def test_unreadable_image_is_named(city):
    root, images, _ = city
    images[2].write_bytes(b'not a png')
    with pytest.raises(ValueError, match=rf"dataset 'cityscapes': cannot read {images[2]}"):
        _build(root)


def test_truncated_image_is_named_when_loaded(city):
    root, images, labels = city
    data = images[0].read_bytes()
    images[0].write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    dataset = _build(root)
    with pytest.raises(
        RuntimeError,
        match=rf"loading sample 0 of dataset 'cityscapes' failed: "
        rf'image {images[0]}, label {labels[0]}',
    ):
        dataset[0]


def test_label_outside_the_label_space_is_named(city):
    root, _, labels = city
    label = cv2.imread(str(labels[0]), cv2.IMREAD_UNCHANGED)
    label[0, :3] = [19, 40, 255]  # 255 is the ignore index, 19 and 40 are no classes
    cv2.imwrite(str(labels[0]), label)
    dataset = _build(root)
    with pytest.raises(
        ValueError,
        match=rf"label file {labels[0]} of dataset 'cityscapes' holds "
        r'values \[19, 40\]: expected classes 0-18 or ignore '
        r'index 255',
    ):
        dataset[0]
    dataset[1]  # the others load


def test_label_value_beyond_a_byte_is_named(city):

    @TRANSFORMS.register_module(force=True)
    class InstanceIdsAsLabels(BaseTransform):
        """A custom loader's 16-bit ids (MMSeg's LoadAnnotations makes labels uint8)."""

        def transform(self, results):
            label = results['gt_seg_map'].astype(np.int32)
            label[0, :2] = [300, -1]
            results['gt_seg_map'] = label
            return results

    root, _, labels = city
    cfg = _cfg(str(root), names=('cityscapes',))
    cfg['datasets']['cityscapes']['pipeline'] = PIPELINE[:2] + [
        dict(type='InstanceIdsAsLabels'),
        PIPELINE[-1],
    ]
    dataset = DATASETS.build(cfg)
    with pytest.raises(
        ValueError,
        match=rf"label file {labels[0]} of dataset 'cityscapes' holds "
        r'values \[-1, 300\]: expected classes 0-18',
    ):
        dataset[0]


def _augmenting(data_cwd):
    """Both datasets with random crops and flips."""
    cfg = _cfg(str(data_cwd / 'data'))
    for split in cfg['datasets'].values():
        split['pipeline'] = PIPELINE[:2] + [
            dict(type='RandomCrop', crop_size=(32, 32)),
            dict(type='RandomFlip', prob=0.5),
            PIPELINE[-1],
        ]
    return DATASETS.build(cfg)


def test_seeded_keys_repeat_augmentations(data_cwd):
    dataset = _augmenting(data_cwd)
    first, again, other = dataset[(4, 123)], dataset[(4, 123)], dataset[(4, 124)]
    assert first['inputs'].equal(again['inputs'])
    assert not first['inputs'].equal(other['inputs'])
    state = torch.get_rng_state()
    dataset[(4, 5)]
    assert torch.get_rng_state().equal(state)  # dropout's stream is left alone


def test_batch_fetched_at_once_equals_its_samples_one_by_one(data_cwd):
    dataset = _augmenting(data_cwd)
    keys = [(0, 11), (2, 12), (4, 13), (5, 14), 1]  # as torch's loader asks for a batch

    def states():
        return random.random(), np.random.random(), torch.rand(1).item()

    one_by_one = [dataset[key] for key in keys]
    after_one_by_one = states()
    torch.manual_seed(0)  # the torch generator left as it was, different from before
    at_once = dataset.__getitems__(keys)
    after_at_once = states()
    for x, y in zip(one_by_one, at_once):
        assert x['inputs'].equal(y['inputs'])
        assert x['data_samples'].gt_sem_seg.data.equal(y['data_samples'].gt_sem_seg.data)
        assert x['data_samples'].dataset_name == y['data_samples'].dataset_name
    assert after_at_once[:2] == after_one_by_one[:2]  # the last seeded sample's streams
    torch.manual_seed(0)
    assert after_at_once[2] == torch.rand(1).item()


@pytest.mark.parametrize('ignore', [255, 250, 0, -1])
@pytest.mark.parametrize('dtype', [np.uint8, np.int32, np.int64])
def test_label_check_names_exactly_the_values_outside_the_label_space(data_cwd, ignore, dtype):

    @TRANSFORMS.register_module(force=True)
    class LabelsOfOneRow(BaseTransform):
        """A custom loader's label: the row ``values``."""

        values = []

        def transform(self, results):
            results['gt_seg_map'] = np.array([self.values], dtype=dtype)
            return results

    # Either side of the 19 classes and of every ignore index, as far as the dtype holds them.
    values = [
        v
        for v in (0, 18, 19, 249, 250, 251, 254, 255, 256, 300, -1, -2)
        if np.array(v).astype(dtype) == v
    ]
    cfg = _cfg(str(data_cwd / 'data'), names=('cityscapes',))
    cfg['datasets']['cityscapes'].update(
        ignore_index=ignore, pipeline=PIPELINE[:2] + [dict(type='LabelsOfOneRow'), PIPELINE[-1]]
    )
    dataset = DATASETS.build(cfg)
    ignored = [ignore] if ignore in values else []
    for row in [[5, v] + ignored for v in values] + [values]:
        LabelsOfOneRow.values = row
        outside = sorted({v for v in row if not (0 <= v < 19 or v == ignore)})
        if outside:
            with pytest.raises(
                ValueError,
                match=re.escape(
                    f'holds values {outside}: expected classes 0-18 or ignore index {ignore}'
                ),
            ):
                dataset[0]
        else:
            assert dataset[0]['data_samples'].gt_sem_seg.data.tolist() == [[row]]


def test_16_bit_label_beyond_a_byte_is_named_before_it_wraps(city):
    root, _, labels = city
    label = cv2.imread(str(labels[1]), cv2.IMREAD_UNCHANGED).astype(np.uint16)
    cv2.imwrite(str(labels[1]), label)  # 16-bit, every value a byte: loads as it reads
    dataset = _build(root)
    assert dataset[1]['data_samples'].gt_sem_seg.data[0].numpy().tolist() == label.tolist()

    label[0, :3] = [300, 257, 1]  # LoadAnnotations' uint8 cast would make 257 class 1
    cv2.imwrite(str(labels[1]), label)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"dataset 'cityscapes': label file {labels[1]} holds values [257, 300] outside the "
            "bytes 0-255; MMSeg's LoadAnnotations casts labels to uint8, so 257 would load as "
            '1: expected class ids and ignore index in 0-255'
        ),
    ):
        _build(root)


def test_label_error_names_the_file_values_before_reduce_zero_label(city):
    root, _, labels = city
    label = cv2.imread(str(labels[0]), cv2.IMREAD_UNCHANGED)
    label[0, :3] = [21, 20, 19]  # loaded as 20, 19 (outside classes 0-18) and 18
    cv2.imwrite(str(labels[0]), label)
    cfg = _cfg(str(root), names=('cityscapes',))
    cfg['datasets']['cityscapes']['reduce_zero_label'] = True
    dataset = DATASETS.build(cfg)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"label file {labels[0]} of dataset 'cityscapes' holds values [19, 20] (file values "
            '[20, 21] before reduce_zero_label): expected classes 0-18 or ignore index 255'
        ),
    ):
        dataset[0]

    cfg['datasets']['cityscapes']['metainfo'] = dict(classes=('road', 'sidewalk'))
    dataset = DATASETS.build(cfg)  # label_map: 0 -> 0, 1 -> 1, 2-18 -> 255, others kept
    with pytest.raises(
        ValueError,
        match=re.escape(
            'holds values [19, 20] (file values [20, 21] before reduce_zero_label and '
            'label_map): expected classes 0-1 or ignore index 255'
        ),
    ):
        dataset[0]
