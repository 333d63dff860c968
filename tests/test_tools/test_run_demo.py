"""The main job, tools/run_demo.py, end to end at test size (2 iterations per model)."""

import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import pytest

from conftest import REPO, shared_folder

# Each test trains or runs a tool in a fresh interpreter.
# One pytest-xdist worker runs them all, first (tests/conftest.py's ONE_WORKER, LONGEST_FIRST):
# the other does not wait for the demo they share.
pytestmark = pytest.mark.slow

LABELS = [
    'CDCL (DSBN + DAT)',
    'single: Cityscapes only',
    'single: BDD100K only',
    'joint: shared BN, one classifier',
]
CLASS_TABLE = re.compile(r'^\|\s+Class\s+\|\s+IoU\s+\|', flags=re.M)  # per-class IoU tables
# 2 iterations on 32x32 crops of 32x64 images: the demo's every stage at the least cost
TINY = ['--iters', '2', '--num-images', 'train=4', 'val=6', '--image-size', '32', '64']
TINY += ['--crop', '32', '32']


def _run_demo(cwd, *args):
    # The console as a user sees it without a warnings setting of their own: the tests assert
    # which of MMSeg's notices it shows.
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'run_demo.py'), *TINY, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _quiet_demo(cwd):
    result = _run_demo(cwd, '--work-dir', 'wd', '--more')
    (cwd / 'stdout.txt').write_text(result.stdout)
    (cwd / 'stderr.txt').write_text(result.stderr)


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """A quiet run of every stage (--more) in a folder without data: it generates its own. Run
    once per test run
    (conftest's shared_folder); its console is kept in stdout.txt and stderr.txt."""
    cwd = shared_folder(tmp_path_factory, 'demo', _quiet_demo)
    return cwd, subprocess.CompletedProcess(
        [], 0, (cwd / 'stdout.txt').read_text(), (cwd / 'stderr.txt').read_text()
    )


def test_console_is_progress_validation_lines_and_the_table(demo):
    cwd, result = demo
    out = result.stdout
    assert 'generating data/demo/{cityscapes,bdd100k}: 4 train, 6 val images' in out
    assert (
        'generating data/demo/camvid: 4 train, 6 validation images, these also labelled in '
        "Cityscapes' 19 classes"
    ) in out
    for k, label in enumerate(LABELS, 1):
        assert f'[{k}/7] {label} [########################] 2/2  loss ' in out
    # the learning curves' four models; the universal model trains without validation
    assert out.count('  iteration 1: validation mIoU cityscapes ') == 4
    assert out.count('  iteration 2: validation mIoU cityscapes ') == 4
    assert 'validation mIoU cityscapes' not in out.split('[5/7]')[1]
    assert out.count('  test mIoU cityscapes ') == 4
    assert (
        "[5/7] a universal model, one classifier of Cityscapes' 19 classes from Cityscapes' and "
        "camvid's labels: configs/demo/cdcl_universal_cityscapes_camvid.py, "
    ) in out
    assert '  mIoU in 19 classes on camvid: universal model (Cityscapes + CamVid labels): ' in out
    assert '[6/7] CDCL (DSBN + DAT) on images of unknown source, camvid added' in out
    assert (
        '[7/7] CDCL (DSBN + DAT) grows a branch for camvid from its 4 training images, '
        'labels unused: tools/add_dataset_branch.py'
    ) in out
    # each stage's time
    assert re.findall(r'^  \[(\d)/7\] done in \d+\.\d min$', out, re.M) == list('1234567')
    assert (cwd / 'wd' / 'results.md').read_text() in out  # the tables as written
    # No mmengine log lines (nor the paths of checkpoints it loads), per-class tables or
    # warnings on the console: 89 lines in all.
    assert 'mmengine - INFO' not in out and not CLASS_TABLE.search(out)
    assert 'Loads checkpoint' not in out and result.stderr == ''
    assert len(out.splitlines()) < 95


def test_complete_logs_go_to_each_run_folder(demo):
    cwd, result = demo
    [run] = [osp.basename(p) for p in glob.glob(str(cwd / 'wd' / '2*'))]  # a timestamp
    assert f'wd/{run}/<config>/<timestamp>/<timestamp>.log' in result.stdout
    logs = sorted(glob.glob(str(cwd / 'wd' / run / '*' / '*' / '*.log')))
    # five trainings (CDCL, its baselines, the universal model) and CDCL's test on images of
    # unknown source
    assert len(logs) == 6
    logs = [log for log in logs if 'unknown_source' not in log and 'universal' not in log]
    for log in logs:
        text = open(log).read()
        assert 'Iter(train) [1/2]' in text and 'Iter(test) [12/12]' in text
        assert len(CLASS_TABLE.findall(text)) == 3 * 2  # 2 validations and the test, 2 sets


def test_results_hold_paired_bootstrap_intervals(demo):
    cwd, _ = demo
    with open(cwd / 'wd' / 'results.json') as f:
        results = json.load(f)
    assert (results['seed'], results['iters'], results['test_images_per_dataset']) == (0, 2, 6)
    assert list(results['mIoU']) == LABELS
    for scores in results['mIoU'].values():
        assert set(scores) == {'cityscapes', 'bdd100k'}
        assert all(0 <= v <= 100 for v in scores.values())
    assert list(results['cdcl_minus_baseline']) == LABELS[1:]
    for label, per_dataset in results['cdcl_minus_baseline'].items():
        for name, r in per_dataset.items():
            expected = results['mIoU'][LABELS[0]][name] - results['mIoU'][label][name]
            assert r['difference'] == pytest.approx(expected, abs=0.011)
            assert r['low'] <= r['difference'] <= r['high']
            assert r['excludes_zero'] == (r['low'] > 0 or r['high'] < 0)
            assert (r['num_images'], r['num_resamples'], r['seed']) == (6, 2000, 0)
    table = (cwd / 'wd' / 'results.md').read_text()
    assert re.match(
        r'Result of `make demo` \(`tools/run_demo.py`, seed 0\): 2 iterations per '
        r'model on 32x32 crops, tested on 6 validation images per dataset; \d+\.\d min on '
        r'\d+ CPU cores \(with --more\)\.\n\n\| model \|',
        table,
    )
    assert (
        '| model | Cityscapes mIoU | CDCL − model (95% interval) | BDD100K mIoU | '
        'CDCL − model (95% interval) | mean mIoU |'
    ) in table
    first = table.split("The universal model on CamVid's")[0]
    assert first.count('\n| ') == 5  # header and four models
    assert '- Established on these images (interval excludes 0): ' in table
    assert '- Not established (interval includes 0): ' in table
    curves = cv2.imread(str(cwd / 'wd' / 'curves.png'))
    panel = cv2.imread(str(cwd / 'wd' / 'panel.png'))
    assert curves.shape[1] > curves.shape[0] > 100
    assert panel.shape[0] > 300 and panel.shape[1] > 600  # 4 rows of image | gt | 2 models


def test_cdcl_tested_on_images_of_unknown_source_and_bn_statistics_drawn(demo):
    cwd, _ = demo
    with open(cwd / 'wd' / 'results.json') as f:
        unknown = json.load(f)['unknown_source']
    for source in ('cityscapes', 'bdd100k', 'camvid'):
        for route in ('auto', 'ensemble', 'branch_cityscapes', 'branch_bdd100k'):
            assert 0 <= unknown[f'{source}/{route}/mIoU'] <= 100
        assert sum(unknown[f'choice/{source}/{d}'] for d in ('cityscapes', 'bdd100k')) == 6
    assert 'camvid/oracle/mIoU' not in unknown and 0 <= unknown['bdd100k/branch_accuracy'] <= 100
    table = (cwd / 'wd' / 'results.md').read_text().split('CDCL on images of unknown source')[1]
    table = table.split('A branch for CamVid')[0]
    assert table.count('\n| ') == 4  # header and three datasets
    assert '| CamVid (never trained on) | — |' in table
    with open(cwd / 'wd' / 'bn_statistics.json') as f:
        stats = json.load(f)
    assert [c['label'] for c in stats['checkpoints']] == [
        'CDCL',
        'single: Cityscapes only',
        'single: BDD100K only',
    ]
    assert cv2.imread(str(cwd / 'wd' / 'bn_statistics.png')).shape[0] > 300


def test_verbose_restores_the_complete_console(demo):
    """`make demo`'s stages with --verbose: mmengine's own console (its log lines, the per-class
    tables) and MMSeg's notices, seen for the first model; the run is stopped at the second
    (each model's console is the same Runner's)."""
    cwd, quiet = demo
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    command = [sys.executable, osp.join(REPO, 'tools', 'run_demo.py'), *TINY, '--verbose']
    lines = []
    with open(cwd / 'verbose_stderr.txt', 'w') as stderr:
        proc = subprocess.Popen(
            [*command, '--work-dir', 'wd_verbose'],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=dict(env, PYTHONUNBUFFERED='1'),
        )
        try:
            for line in proc.stdout:
                if line.startswith('[2/5] '):
                    break
                lines.append(line)
        finally:
            proc.kill()
            proc.wait()
    out, err = ''.join(lines), (cwd / 'verbose_stderr.txt').read_text()
    assert '[1/5] CDCL (DSBN + DAT): configs/demo/cdcl_cityscapes_bdd.py, ' in out, out + err
    assert re.search(r'^  \[1/5\] done in \d+\.\d min$', out, re.M), out[-3000:] + err
    assert 'generating' not in out  # the data of the first run is reused
    assert out.count('Iter(train) [1/2]') == 1
    assert out.count('Iter(val) [12/12]') == 2 and out.count('Iter(test) [12/12]') == 1
    assert 'mmengine - INFO' in out
    assert len(CLASS_TABLE.findall(out)) == 3 * 2  # 2 validations and the test, 2 datasets
    assert 'avg_non_ignore' in err  # mmseg's notices, filtered only when quiet
    assert 'pkg_resources is deprecated' not in err + quiet.stderr


def test_cdcl_grows_a_branch_for_the_new_camera_without_its_labels(demo):
    cwd, _ = demo
    with open(cwd / 'wd' / 'results.json') as f:
        results = json.load(f)
    new, unknown = results['new_camera'], results['unknown_source']
    routes = ['camvid', 'cityscapes', 'bdd100k', 'auto of cityscapes+bdd100k', 'auto', 'ensemble']
    assert list(new['mIoU']) == routes and list(new['intervals']) == routes[1:]
    assert new['num_images'] == 4 and new['source'] == min(
        new['distances'], key=new['distances'].get
    )
    # The routes of the model before score as the unknown-source test (UnknownSourceMetric)
    # scored them on the same CamVid images: the old branches are unchanged by the new one.
    for route, key in [
        ('cityscapes', 'branch_cityscapes'),
        ('bdd100k', 'branch_bdd100k'),
        ('auto of cityscapes+bdd100k', 'auto'),
    ]:
        assert new['mIoU'][route] == pytest.approx(unknown[f'camvid/{key}/mIoU'], abs=0.006)
    for route, r in new['intervals'].items():
        expected = new['mIoU']['camvid'] - new['mIoU'][route]
        assert r['difference'] == pytest.approx(expected, abs=0.011)
        assert r['low'] <= r['difference'] <= r['high'] and r['num_images'] == 6
    assert osp.isfile(cwd / new['checkpoint'])  # relative to where the demo ran
    table = (cwd / 'wd' / 'results.md').read_text().split('A branch for CamVid from its 4')[1]
    assert table.count('\n| ') == 7  # header and six routes
    assert '| CamVid branch (new) | ' in table and '| auto before | ' in table


def test_the_universal_model_against_cdcls_routes_without_camvids_labels(demo):
    cwd, _ = demo
    with open(cwd / 'wd' / 'results.json') as f:
        universal = json.load(f)['universal']
    routes = [
        'universal model (Cityscapes + CamVid labels): CamVid branch',
        'CDCL: CamVid branch from its training images, labels unused',
        'CDCL: auto',
        'CDCL: Cityscapes branch',
    ]
    assert list(universal['mIoU']) == routes and list(universal['intervals']) == routes[1:]
    for route, r in universal['intervals'].items():
        expected = universal['mIoU'][routes[0]] - universal['mIoU'][route]
        assert r['difference'] == pytest.approx(expected, abs=0.011)
        assert r['low'] <= r['difference'] <= r['high'] and r['num_images'] == 6
    assert all(len(ious) == 19 for ious in universal['IoU'].values())  # Cityscapes' classes
    table = (cwd / 'wd' / 'results.md').read_text()
    table = table.split("The universal model on CamVid's 6 validation images")[1]
    table = table.split('CDCL on images of unknown source')[0]
    assert table.count('\n| ') == 5  # header and four routes
