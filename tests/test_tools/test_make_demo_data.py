"""tools/make_demo_data.py, the command line of mmseg_cdcl.testing.make_demo_data."""

import os.path as osp
import subprocess
import sys

import cv2
import pytest

from conftest import REPO

TOOL = osp.join(REPO, 'tools', 'make_demo_data.py')


@pytest.mark.slow
def test_cli_writes_the_requested_sizes_and_reports_usage_errors(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            TOOL,
            '--out-dir',
            str(tmp_path),
            '--datasets',
            'camvid',
            'bdd100k',
            '--num-images',
            'train=2',
            'val=1',
            'test=1',
            '--image-size',
            '32',
            '64',
            '--shift',
            '0.5',
            '--universal-labels',
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        f'camvid: train 2, val 1, test 1 -> {tmp_path / "camvid"}',
        f'bdd100k: train 2, val 1 -> {tmp_path / "bdd100k"}',
    ]
    camvid_test = next((tmp_path / 'camvid' / 'images' / 'test').iterdir())
    bdd_val = next((tmp_path / 'bdd100k' / 'images' / '10k' / 'val').iterdir())
    assert cv2.imread(str(camvid_test)).shape == (24, 32, 3)  # 3:4 at the given height
    assert cv2.imread(str(bdd_val)).shape == (32, 64, 3)
    # --universal-labels: each label's scene in the 19 classes, the label's name
    universal = tmp_path / 'camvid' / 'universal_annotations' / 'test' / camvid_test.name
    assert cv2.imread(str(universal), cv2.IMREAD_UNCHANGED).shape == (24, 32)
    # a usage error naming the folder, not a traceback
    result = subprocess.run(
        [sys.executable, TOOL, '--out-dir', str(tmp_path), '--datasets', 'camvid'],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert f'error: {tmp_path / "camvid"} exists and is not empty' in result.stderr
