"""mmseg_cdcl.testing.make_demo_data: street scenes in each dataset's real format and style."""

import hashlib
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from mmseg.registry import DATASETS

from mmseg_cdcl.testing import make_demo_data
from mmseg_cdcl.testing.demo_data import CAMVID_LUT

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# (MMSeg dataset type, img_path, seg_map_path, number of classes, file name pattern)
FORMATS = {
    'cityscapes': (
        'CityscapesDataset',
        'leftImg8bit/{}',
        'gtFine/{}',
        19,
        r'[a-z]+/[a-z]+_\d{6}_\d{6}_leftImg8bit\.png',
    ),
    'bdd100k': (
        'BDD100KDataset',
        'images/10k/{}',
        'labels/sem_seg/masks/{}',
        19,
        r'[0-9a-f]{8}-[0-9a-f]{8}\.jpg',
    ),
    'camvid': (
        'CamVidDataset',
        'images/{}',
        'annotations/{}',
        11,
        r'(0001TP_\d{6}|0006R0_f\d{5}|0016E5_\d{5}|Seq05VD_f\d{5})\.png',
    ),
}
SAME_SIZE = {name: (64, 128) for name in FORMATS}


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """The default demo data, generated once: 24 train / 8 val (/ 8 test for CamVid)."""
    return make_demo_data(str(tmp_path_factory.mktemp('demo')))


def _read(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def _hashes(root):
    return {
        osp.relpath(osp.join(d, f), root): hashlib.md5(
            open(osp.join(d, f), 'rb').read()
        ).hexdigest()
        for d, _, files in os.walk(root)
        for f in files
    }


@pytest.mark.parametrize('name', list(FORMATS))
def test_stock_dataset_classes_load_the_folders(demo, name):
    dataset_type, img_path, seg_map_path, num_classes, pattern = FORMATS[name]
    expected = dict(train=24, val=8, test=8)
    shape = (96, 128) if name == 'camvid' else (128, 256)
    assert list(demo[name]['splits']) == (
        ['train', 'val', 'test'] if name == 'camvid' else ['train', 'val']
    )
    for split, info in demo[name]['splits'].items():
        dataset = DATASETS.build(
            dict(
                type=dataset_type,
                data_root=demo[name]['data_root'],
                pipeline=PIPELINE,
                data_prefix=dict(
                    img_path=img_path.format(split), seg_map_path=seg_map_path.format(split)
                ),
            )
        )
        assert len(dataset) == info['num_images'] == expected[split]
        for i in (0, len(dataset) - 1):
            sample = dataset[i]
            values = set(sample['data_samples'].gt_sem_seg.data.unique().tolist())
            assert values <= set(range(num_classes)) | {255}, values
            assert tuple(sample['inputs'].shape) == (3, *shape)
        img_file, seg_file = info['files'][0]
        assert re.fullmatch(
            pattern,
            osp.relpath(img_file, osp.join(demo[name]['data_root'], img_path.format(split))),
        )
        assert open(img_file, 'rb').read(2) == (b'\xff\xd8' if name == 'bdd100k' else b'\x89P')
        label = _read(seg_file)
        assert label.dtype == np.uint8 and label.shape == shape  # one channel of class ids


@pytest.mark.parametrize('name', list(FORMATS))
def test_every_class_appears_in_the_train_split(demo, name):
    num_classes = FORMATS[name][3]
    seen = set()
    for _, seg_file in demo[name]['splits']['train']['files']:
        seen |= set(np.unique(_read(seg_file)).tolist())
    assert set(range(num_classes)) <= seen, sorted(set(range(num_classes)) - seen)


def test_camvid_mapping_follows_the_registered_class_names():
    from mmseg.datasets import CityscapesDataset

    from mmseg_cdcl.datasets import CamVidDataset

    cs, cv = CityscapesDataset.METAINFO['classes'], CamVidDataset.METAINFO['classes']
    mapped = {c: (cv[CAMVID_LUT[i]] if CAMVID_LUT[i] != 255 else None) for i, c in enumerate(cs)}
    assert mapped == {
        'road': 'road',
        'sidewalk': 'sidewalk',
        'building': 'building',
        'wall': 'building',
        'fence': 'fence',
        'pole': 'pole',
        'traffic light': 'sign',
        'traffic sign': 'sign',
        'vegetation': 'tree',
        'terrain': 'tree',
        'sky': 'sky',
        'person': 'pedestrian',
        'rider': 'bicyclist',
        'car': 'car',
        'truck': 'car',
        'bus': 'car',
        'train': None,
        'motorcycle': 'bicyclist',
        'bicycle': 'bicyclist',
    }
    assert CAMVID_LUT[255] == 255


def test_same_seed_gives_identical_bytes(tmp_path):
    kwargs = dict(num_images=dict(train=3, val=1, test=1), image_size=SAME_SIZE)
    make_demo_data(str(tmp_path / 'a'), seed=0, **kwargs)
    make_demo_data(str(tmp_path / 'b'), seed=0, **kwargs)
    make_demo_data(str(tmp_path / 'c'), seed=1, **kwargs)
    a, b, c = (_hashes(str(tmp_path / d)) for d in 'abc')
    assert len(a) == 2 * (4 + 4 + 5) and a == b
    shared = set(a) & set(c)  # Cityscapes and CamVid names; BDD ids depend on the seed
    assert len(shared) == 2 * (4 + 5) and all(a[f] != c[f] for f in shared)
    assert not any(f.startswith('bdd100k') for f in shared)


def _stats(info):
    """Per-dataset mean and std of the train images (RGB) and class fractions of the labels."""
    out = {}
    for name, entry in info.items():
        files = entry['splits']['train']['files']
        imgs = np.stack([_read(f)[..., ::-1] for f, _ in files]).reshape(-1, 3).astype(float)
        labels = np.stack([_read(s) for _, s in files])
        freq = np.bincount(labels.ravel(), minlength=256) / labels.size
        out[name] = imgs.mean(0), imgs.std(0), freq
    return out


def test_shift_changes_image_statistics_and_class_frequencies(tmp_path):
    kwargs = dict(num_images=dict(train=16, val=0, test=0), image_size=SAME_SIZE)
    strong = _stats(make_demo_data(str(tmp_path / 's1'), shift=1.0, **kwargs))
    none = _stats(make_demo_data(str(tmp_path / 's0'), shift=0.0, **kwargs))
    cs_mean, cs_std, cs_freq = strong['cityscapes']
    bdd_mean, bdd_std, bdd_freq = strong['bdd100k']
    cv_mean, cv_std, cv_freq = strong['camvid']
    # BDD100K: darker (> 30 grey levels) and bluish; CamVid: warm cast and flat.
    assert cs_mean.mean() - bdd_mean.mean() > 30
    assert bdd_mean[2] - bdd_mean[0] > 15 > abs(cs_mean[2] - cs_mean[0])
    assert cv_mean[0] - cv_mean[2] > 35
    assert (cv_std < 0.75 * cs_std).all()
    # Class frequencies: BDD100K has more cars and less vegetation; CamVid more trees.
    assert bdd_freq[13] > 1.2 * cs_freq[13] and bdd_freq[8] < 0.5 * cs_freq[8]
    assert cv_freq[5] > 1.3 * (cs_freq[8] + cs_freq[9])
    # shift=0: CamVid's images are Cityscapes' pixels (both PNG); BDD100K's are the same pixels
    # through JPEG, tested exactly below (how much JPEG smooths them is the codec's business).
    np.testing.assert_array_equal(none['camvid'][0], none['cityscapes'][0])
    np.testing.assert_array_equal(none['camvid'][1], none['cityscapes'][1])


def test_shift_zero_renders_the_same_scenes_in_every_label_space(tmp_path):
    info = make_demo_data(
        str(tmp_path), num_images=dict(train=6, val=2, test=0), image_size=SAME_SIZE, shift=0.0
    )
    for split in ('train', 'val'):
        for cs, bdd, cv in zip(*(info[n]['splits'][split]['files'] for n in FORMATS)):
            cs_label = _read(cs[1])
            np.testing.assert_array_equal(_read(bdd[1]), cs_label)
            np.testing.assert_array_equal(_read(cv[1]), CAMVID_LUT[cs_label])
            np.testing.assert_array_equal(_read(cv[0]), _read(cs[0]))  # both PNG
            # BDD's image is the same pixels through JPEG at the neutral quality (95)
            jpeg = cv2.imencode('.jpg', _read(cs[0]), [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
            np.testing.assert_array_equal(_read(bdd[0]), cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED))


def test_refuses_non_empty_folder_unless_overwrite(tmp_path):
    kwargs = dict(datasets=['camvid'], num_images=dict(train=2, val=1, test=1))
    make_demo_data(str(tmp_path), **kwargs)
    stale = tmp_path / 'camvid' / 'images' / 'train' / 'stale.png'
    stale.write_bytes(b'')
    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path / 'camvid'))):
        make_demo_data(str(tmp_path), **kwargs)
    info = make_demo_data(str(tmp_path), overwrite=True, **kwargs)
    assert not stale.exists()
    assert len(os.listdir(tmp_path / 'camvid' / 'images' / 'train')) == 2
    assert info['camvid']['splits']['test']['num_images'] == 1


@pytest.mark.parametrize(
    'kwargs, error, match',
    [
        (
            dict(datasets=['kitti']),
            ValueError,
            "unknown dataset 'kitti'; known: cityscapes, bdd100k, camvid",
        ),
        (dict(datasets=['camvid', 'camvid']), ValueError, 'distinct'),
        (dict(shift=1.5), ValueError, r'shift must be in \[0, 1\], got 1.5'),
        (
            dict(image_size={'camvid': (0, 128)}),
            ValueError,
            r"'camvid' must be \(H, W\).*\(0, 128\)",
        ),
        (dict(image_size=(-8, 256)), ValueError, r"'cityscapes'.*\(-8, 256\)"),
        (dict(num_images={'training': 4}), ValueError, r"unknown splits \['training'\]"),
        (dict(num_images={'camvid': {'train': -1}}), ValueError, r"'camvid' 'train'.*got -1"),
        (dict(seed=-1), ValueError, 'seed must be a non-negative int, got -1'),
        (dict(styles={'camvid': {'fog': 0.5}}), ValueError, r"unknown style keys \['fog'\]"),
        (dict(styles={'camvid': {'class_weights': {'tram': 2}}}), ValueError, r"\['tram'\]"),
    ],
)
def test_invalid_arguments_are_named(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_demo_data(str(tmp_path), **kwargs)
    assert os.listdir(tmp_path) == []  # nothing written


def test_universal_labels_are_the_scenes_the_datasets_labels_are_mapped_from(tmp_path):
    """On request, each image's scene in Cityscapes' 19 classes beside its dataset's labels:
    CamVid's labels are it mapped to CamVid's classes, Cityscapes' are it; nothing else
    changes."""
    kwargs = dict(
        datasets=('cityscapes', 'camvid'), num_images=dict(train=2, val=1, test=1), seed=0
    )
    info = make_demo_data(str(tmp_path / 'u'), universal_labels=True, **kwargs)
    make_demo_data(str(tmp_path / 'plain'), **kwargs)
    for name in ('cityscapes', 'camvid'):
        for split, entry in info[name]['splits'].items():
            assert entry['universal_seg_map_path'] == f'universal_annotations/{split}'
            for _, seg in entry['files']:
                rel = osp.relpath(seg, osp.join(info[name]['data_root'], entry['seg_map_path']))
                universal = _read(
                    osp.join(info[name]['data_root'], entry['universal_seg_map_path'], rel)
                )
                own = _read(seg)
                assert set(np.unique(universal)) - set(range(19)) <= {255}
                expected = CAMVID_LUT[universal] if name == 'camvid' else universal
                np.testing.assert_array_equal(own, expected)
    universal = {f for f in _hashes(str(tmp_path / 'u')) if 'universal_annotations' in f}
    assert len(universal) == 3 + 4  # an image each: Cityscapes' train and val, CamVid's
    plain = _hashes(str(tmp_path / 'plain'))
    assert {f: h for f, h in _hashes(str(tmp_path / 'u')).items() if f not in universal} == plain
