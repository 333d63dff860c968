"""tools/benchmark.py end to end at a tiny size: the structure of its JSON and table, not speed."""

import json
import math
import os.path as osp
import re
import runpy
import subprocess
import sys

import pytest

from conftest import REPO

ROWS = {
    'a': ['DSBN fwd+bwd, C=64 128x128', 'DSBN fwd+bwd, C=128 64x64', 'DSBN fwd+bwd, C=512 32x32'],
    'c': [
        'inference, batch 1',
        'inference with an added branch, batch 1',
        'inference of unknown source, batch 1',
        'FLOPs at 3x32x32',
        'params (whole model)',
    ],
    'd': ['data loading, 0 workers'],
    'e': ['resume to first new iteration'],
}


@pytest.mark.slow  # runs the tool in a fresh interpreter
def test_benchmark_writes_json_and_table_of_every_measured_row(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            'tools/benchmark.py',
            '--only',
            'a,c,d,e',
            '--crop',
            '32',
            '32',
            '--batch',
            '1',
            '--pairs',
            '1',
            '--warmup',
            '0',
            '--branch-layers',
            '3',
            '--out-dir',
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / 'benchmark.json') as f:
        report = json.load(f)
    table = (tmp_path / 'benchmark.md').read_text()
    assert table in result.stdout  # the table is printed too

    machine = report['machine']
    assert machine['cpu'] and machine['cores'] >= 1 and machine['device'] == 'cpu'
    assert machine['torch'] in table and machine['cpu'] in table
    assert report['settings']['pairs'] == 1
    assert report['settings']['malloc'] == 'freed memory kept (mallopt)'  # glibc here
    assert set(report['sections']) == set(ROWS)
    for section, names in ROWS.items():
        rows = report['sections'][section]
        assert [r['name'] for r in rows] == names
        for r in rows:
            assert r['section'] == section
            assert f'| {section} | {r["name"]} |' in table
            for variant in ('a', 'b'):
                stats = r[variant]
                # one timed pair (--pairs 1); data loading takes 5 times --pairs
                assert stats['label'] and len(stats['values']) == (5 if section == 'd' else 1)
                for key in ('median', 'min', 'max'):
                    assert math.isfinite(stats[key]) and stats[key] > 0
            assert all(
                math.isfinite(r['ratio'][k]) and r['ratio'][k] > 0 for k in ('median', 'min', 'max')
            )
            assert r['met'] in (True, False, None)

    inference, added, auto, flops, params = report['sections']['c']
    # The model with a third branch, added as tools/add_dataset_branch.py adds it (a copy of
    # the first dataset's), predicts through it as the exported plain model predicts.
    assert (
        added['a']['label'] == 'CDCL + new_camera, routed to it'
        and added['target'] == '1.00 ± 0.03'
    )
    assert (
        added['note']
        == '3 branches, the new one a copy of cityscapes: largest logit difference 0.0e+00'
    )
    assert auto['target'] == '≤ 1.15' and auto['a']['label'] == 'CDCL, branch auto'
    assert auto['note'].startswith('branch from the first 3 DSBN layers; chose [')
    assert flops['a']['median'] == flops['b']['median'] and flops['note'] == 'equal'
    # CDCL holds a second dataset's BN and classifier: more parameters, the same FLOPs.
    assert params['a']['median'] > params['b']['median']
    assert inference['target'] == '1.00 ± 0.03' and inference['met'] in (True, False)
    assert report['sections']['d'][0]['unit'] == 'images/s'
    for dsbn in report['sections']['a']:  # the allocator's share, DSBN / BatchNorm
        assert re.fullmatch(r'page faults per call \d+ / \d+', dsbn['note'])
    resume = report['sections']['e'][0]  # seconds to the first iteration after resuming
    assert resume['a']['label'] == 'checkpoint at iter 1000' and resume['unit'] == 's'


@pytest.mark.slow  # runs the tool in a fresh interpreter
def test_benchmark_measures_the_conversion_of_a_stock_config_with_amp_and_channels_last(tmp_path):
    """--config: sections b and c of any MMSeg model's CDCL conversion against it; a config of
    the user's folder, given relative to it, reaches the children that measure peak memory.
    With --amp, --channels-last (contiguous batches, as the sampler advises for it), glibc's
    allocator and the training throughput's share of a peak."""
    (tmp_path / 'bisenetv2_mine.py').write_text(
        "_base_ = ['mmseg::bisenetv2/bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py']\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'benchmark.py'),
            '--only',
            'a,b,c',
            '--config',
            'bisenetv2_mine.py',
            '--crop',
            '64',
            '64',
            '--batch',
            '2',
            '--pairs',
            '1',
            '--warmup',
            '0',
            '--amp',
            '--channels-last',
            '--default-malloc',
            '--peak-tflops',
            '2',
            '--out-dir',
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / 'benchmark.json') as f:
        report = json.load(f)
    settings = report['settings']
    assert settings['config'] == str(tmp_path / 'bisenetv2_mine.py')
    assert settings['amp'] is True and settings['channels_last'] is True
    assert settings['contiguous'] is True and settings['malloc'] == 'default'
    assert [r['name'] for r in report['sections']['a']] == ROWS['a']
    train = report['sections']['b']
    assert [r['b']['label'] for r in train[:2]] == ['bisenetv2 4', 'bisenetv2 4']
    assert [r['a']['label'] for r in train[:2]] == ['CDCL 2 x 2', 'CDCL 2 x 2']
    inference, _, _, flops, params = report['sections']['c']
    assert inference['b']['label'] == 'exported plain bisenetv2'
    assert flops['note'] == 'equal' and flops['a']['median'] == flops['b']['median'] > 0
    assert params['a']['median'] > params['b']['median']
    assert float(inference['note'].split()[-1]) < 1e-4  # the same logits
    rows = {r['name']: r for r in train}
    macs = 3 * flops['a']['median']  # a forward at 3x64x64 (section c's FLOPs), its backward
    for n in (2, 3):
        step, speed = rows[f'train step, {n} datasets'], rows[f'train throughput, {n} datasets']
        # images/s is the images of a step over its time, per variant and repetition
        for variant in ('a', 'b'):
            assert speed[variant]['values'] == [
                pytest.approx(2 * n / t) for t in step[variant]['values']
            ]
        assert speed['note'].startswith(f'{macs / 1e9:.3g} G multiply-adds per training image')
        use = speed['a']['median'] * 2 * macs / 2e12
        assert f'{use:.1%} (A)' in speed['note'] and 'of 2 TFLOP/s' in speed['note']
        assert rows[f'peak memory, {n} datasets']['met'] in (True, False)


def test_a_config_path_is_the_users_folder_s_and_mmseg_names_stay(tmp_path, monkeypatch):
    """The children measure in the tools' parent folder, so --config REL.py becomes absolute
    (`mmseg-cdcl benchmark` runs the installed tool from mmseg_cdcl/.mim)."""
    monkeypatch.chdir(tmp_path)
    parse_args = runpy.run_path(osp.join(REPO, 'tools', 'benchmark.py'))['parse_args']
    assert parse_args(['--config', 'mine.py']).config == str(tmp_path / 'mine.py')
    stock = 'mmseg::bisenetv2/bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py'
    assert parse_args(['--config', stock]).config == stock
    assert parse_args([]).config is None
