"""tools/infer.py on a trained CDCL checkpoint: the chosen dataset's colours, every image of a
folder tree, distinct outputs, unreadable images reported."""

import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO
from mmseg_cdcl.datasets import CamVidDataset

# Each test trains or runs a tool in a fresh interpreter.
pytestmark = pytest.mark.slow

CAMVID_COLOURS = {tuple(c) for c in CamVidDataset.METAINFO['palette']}


@pytest.fixture(scope='module')
def trained(trained_cdcl):
    """tests/conftest.py's CDCL Cityscapes + CamVid run of tools/train.py (config.py,
    iter_2.pth), shared with tests/test_tools/test_train.py."""
    return trained_cdcl


def _infer(trained, data_cwd, images, out, dataset='camvid'):
    return subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'infer.py'),
            str(trained / 'config.py'),
            str(trained / 'iter_2.pth'),
            str(images),
            '--out-dir',
            str(out),
            '--dataset',
            dataset,
        ],
        cwd=data_cwd,
        capture_output=True,
        text=True,
    )


def _colours(path):
    return {tuple(c) for c in np.unique(cv2.imread(str(path))[..., ::-1].reshape(-1, 3), axis=0)}


def test_infer_colours_with_the_chosen_dataset_palette(data_cwd, trained, tmp_path):
    images = osp.join(data_cwd, 'data', 'camvid', 'images', 'val')
    out = tmp_path / 'pred'
    result = _infer(trained, data_cwd, images, out)
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(os.listdir(out))
    assert written == sorted(os.listdir(images))
    pred = cv2.imread(str(out / written[0]))
    assert pred.shape == cv2.imread(osp.join(images, written[0])).shape
    assert _colours(out / written[0]) <= CAMVID_COLOURS

    result = _infer(trained, data_cwd, images, out, dataset='kitti')
    assert result.returncode == 2
    assert (
        "unknown dataset 'kitti': the model's datasets are ['cityscapes', 'camvid']"
        in result.stderr
    )


def test_infer_walks_sub_folders_keeps_same_stem_images_apart_and_skips_unreadable_ones(
    data_cwd, trained, tmp_path
):
    camvid = sorted((data_cwd / 'data' / 'camvid' / 'images' / 'val').glob('*.png'))
    root = tmp_path / 'photos'
    (root / 'sub' / 'deeper').mkdir(parents=True)
    shutil.copy(camvid[0], root / 'x.png')
    cv2.imwrite(str(root / 'x.jpg'), cv2.imread(str(camvid[1])))
    shutil.copy(camvid[1], root / 'sub' / 'y.PNG')
    shutil.copy(camvid[2], root / 'sub' / 'deeper' / 'z.png')
    (root / 'sub' / 'corrupt.png').write_bytes(b'not a png')
    (root / 'notes.txt').write_text('not an image')
    out = root / 'pred'  # inside the input: a second run must not predict the predictions

    for _ in range(2):
        result = _infer(trained, data_cwd, root, out)
        assert result.returncode == 1
        written = sorted(p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file())
        assert written == ['sub/deeper/z.png', 'sub/y.png', 'x.jpg.png', 'x.png.png']
        corrupt = root / 'sub' / 'corrupt.png'
        assert f'skipped {corrupt}: not a decodable image' in result.stderr
        assert (
            f'4 of 5 images predicted in {out}; 1 could not be read and were skipped: {corrupt}'
        ) in result.stderr
    for name, image in (
        ('x.png.png', camvid[0]),
        ('x.jpg.png', camvid[1]),
        ('sub/y.png', camvid[1]),
        ('sub/deeper/z.png', camvid[2]),
    ):
        assert cv2.imread(str(out / name)).shape == cv2.imread(str(image)).shape
        assert _colours(out / name) <= CAMVID_COLOURS


def test_infer_images_of_unknown_source_names_each_ones_branch(data_cwd, trained, tmp_path):
    """--dataset auto: each image with the branch its DSBN statistics choose, coloured in that
    dataset's palette, and its line names the branch and the scores."""
    from mmseg.datasets import CityscapesDataset

    images = tmp_path / 'mixed'
    shutil.copytree(osp.join(data_cwd, 'data', 'camvid', 'images', 'val'), images)
    out = tmp_path / 'pred'
    result = _infer(trained, data_cwd, images, out, dataset='auto')
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(out))]
    assert len(lines) == len(os.listdir(images))
    palettes = dict(
        camvid=CAMVID_COLOURS, cityscapes={tuple(c) for c in CityscapesDataset.METAINFO['palette']}
    )
    for line in lines:
        path, _, rest = line.partition(': ')
        chosen, scores = rest.split(' (')
        names = [s.split()[0] for s in scores.rstrip(')').split(', ')]
        assert chosen in ('cityscapes', 'camvid') and names == ['cityscapes', 'camvid']
        assert sum(float(s.split()[1]) for s in scores.rstrip(')').split(', ')) == pytest.approx(
            1, abs=0.02
        )
        assert _colours(path) <= palettes[chosen]
