"""The wheel works without the clone: built from the sources, installed into a fresh
environment, it ships the configs and tools (mmseg_cdcl/.mim/, as MMSeg's wheel) and converts
a config and trains it from an unrelated folder with the installed files only."""

import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest
import torch
from mmengine.config import Config

from conftest import REPO, shared_folder, shrink_config
from mmseg_cdcl import mmengine_checkpoints_allowed
from mmseg_cdcl.datasets import CamVidDataset
from mmseg_cdcl.testing import unformatted
from mmseg_cdcl.utils.shipped_files import CLONE_ONLY

BUILD_INPUTS = (
    'setup.py',
    'pyproject.toml',
    'MANIFEST.in',
    'README.md',
    'requirements',
    'mmseg_cdcl',
    'configs',
    'tools',
)
IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')


def _run(cmd, cwd, env=None):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, (
        ' '.join(map(str, cmd)) + '\n' + result.stdout[-3000:] + result.stderr[-3000:]
    )
    return result


def _shipped_in_clone():
    """configs/ and tools/ files of the clone, as setup.py ships them."""
    files = set()
    for top in ('configs', 'tools'):
        for folder, dirs, names in os.walk(osp.join(REPO, top)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            files |= {
                osp.relpath(osp.join(folder, n), REPO)
                for n in names
                if not n.endswith('.pyc') and n not in CLONE_ONLY
            }
    return files


# Left out of the view of the locked environment: setuptools (its pkg_resources with it), so the
# new environment's is the one pip installs there, and the clone's editable install.
HIDDEN = ('setuptools', 'pkg_resources', '_distutils_hack', 'distutils-precedence.pth')
HIDDEN += ('mmseg_cdcl', '__editable__')


def _pip(tmp, *args):
    python = str(tmp / 'venv' / 'bin' / 'python')
    return _run([sys.executable, '-m', 'pip', '--python', python, 'install', *args], cwd=tmp)


def _install(tmp):
    """The wheel built from a copy of the sources, installed with its requirements into a fresh
    environment that has the newest setuptools (torch 2.13 takes the newest into a new one)."""
    src = tmp / 'src'  # a copy, so the build leaves no build/ in the clone
    src.mkdir()
    for name in BUILD_INPUTS:
        if osp.isdir(osp.join(REPO, name)):
            shutil.copytree(osp.join(REPO, name), src / name, ignore=IGNORE)
        else:
            shutil.copy(osp.join(REPO, name), src / name)
    _run(
        [
            sys.executable,
            '-m',
            'pip',
            'wheel',
            '-q',
            '--no-deps',
            '--no-build-isolation',
            '-w',
            str(tmp / 'dist'),
            str(src),
        ],
        cwd=tmp,
    )
    [wheel] = (tmp / 'dist').glob('mmseg_cdcl-*.whl')
    venv, view = tmp / 'venv', tmp / 'locked'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], cwd=tmp)
    view.mkdir()
    locked = sysconfig.get_paths()['purelib']
    for name in os.listdir(locked):
        if not name.startswith(HIDDEN):
            os.symlink(osp.join(locked, name), view / name)
    with open(osp.join(_purelib(tmp), 'locked_env.pth'), 'w') as f:
        f.write(f'{view}\n')
    _pip(tmp, '-q', 'setuptools')
    record = dict(newest=_setuptools(tmp))
    # What every mmseg:: config meets there before the wheel's requirements are installed.
    record['pkg_resources'] = subprocess.run(
        [str(venv / 'bin' / 'python'), '-c', 'import pkg_resources'],
        capture_output=True,
        text=True,
    ).stderr.splitlines()[-1:]
    # With its requirements, which the environment (the locked packages) meets but setuptools.
    record['pip'] = _pip(tmp, str(wheel)).stdout.splitlines()
    record['installed'] = _setuptools(tmp)
    (tmp / 'setuptools.json').write_text(json.dumps(record))


def _setuptools(tmp):
    python = str(tmp / 'venv' / 'bin' / 'python')
    code = 'import setuptools; print(setuptools.__version__)'
    return _run([python, '-c', code], cwd=tmp).stdout.strip()


def _purelib(tmp):
    return _run(
        [
            str(tmp / 'venv' / 'bin' / 'python'),
            '-c',
            'import sysconfig; print(sysconfig.get_paths()["purelib"])',
        ],
        cwd=tmp,
    ).stdout.strip()


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """A fresh environment holding the wheel, seeing the locked environment's packages but
    setuptools and the clone's editable install through a .pth path (to a folder of links to
    them; not their .pth files); built once per test run (conftest's shared_folder)."""
    tmp = shared_folder(tmp_path_factory, 'wheel', _install)
    [wheel] = (tmp / 'dist').glob('mmseg_cdcl-*.whl')
    venv = tmp / 'venv'
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return dict(
        wheel=wheel,
        venv=venv,
        python=str(venv / 'bin' / 'python'),
        package=osp.join(_purelib(tmp), 'mmseg_cdcl'),
        env=env,
        tmp=tmp,
    )


@pytest.mark.slow
def test_wheel_ships_configs_and_tools_where_mim_looks(installed):
    with zipfile.ZipFile(installed['wheel']) as whl:
        names = whl.namelist()
        entry_points = whl.read(next(n for n in names if n.endswith('entry_points.txt')))
    shipped = {n[len('mmseg_cdcl/.mim/') :] for n in names if n.startswith('mmseg_cdcl/.mim/')}
    assert shipped == _shipped_in_clone()
    assert {
        'configs/cdcl_cityscapes_bdd.py',
        'configs/_base_/datasets/camvid.py',
        'configs/_base_/label_spaces/cityscapes_to_camvid.py',
        'tools/train.py',
        'tools/convert_config.py',
        'tools/export_single_dataset.py',
        'tools/infer.py',
    } <= shipped
    assert b'mmseg-cdcl = mmseg_cdcl.__main__:main' in entry_points
    # The installed configs resolve their relative and mmseg:: bases: the label space reaches
    # the unknown-source config through ../_base_/label_spaces/.
    cfg = Config.fromfile(
        osp.join(
            installed['package'], '.mim', 'configs', 'demo', 'cdcl_cityscapes_bdd_unknown_source.py'
        )
    )
    assert tuple(cfg.model.label_space.classes) == CamVidDataset.METAINFO['classes']
    assert cfg.model.backbone.type == 'DABResNetV1c'


@pytest.mark.slow
def test_wheel_requires_a_setuptools_with_pkg_resources_which_pip_puts_back(installed):
    """mmengine 0.10 reads every mmseg:: config with pkg_resources, which setuptools 81 removed;
    the wheel asks for setuptools<81, so installing it into an environment with the newest
    setuptools replaces that (the convert and train test below then reads mmseg:: configs)."""
    with zipfile.ZipFile(installed['wheel']) as whl:
        metadata = whl.read(next(n for n in whl.namelist() if n.endswith('.dist-info/METADATA')))
    assert 'Requires-Dist: setuptools<81' in metadata.decode().splitlines()
    record = json.loads((installed['tmp'] / 'setuptools.json').read_text())
    newest, installed_version = (
        tuple(map(int, record[k].split('.')[:2])) for k in ('newest', 'installed')
    )
    assert newest >= (81, 0)
    assert record['pkg_resources'] == ["ModuleNotFoundError: No module named 'pkg_resources'"]
    assert f'Found existing installation: setuptools {record["newest"]}' in ' '.join(record['pip'])
    assert (77, 0) <= installed_version < (81, 0)  # and torch 2.13's >=77.0.3
    assert record['pip'][-1].startswith('Successfully installed ')
    assert f'setuptools-{record["installed"]}' in record['pip'][-1].split()


# Each installed Python tool's --help, in one interpreter: its imports (MMSeg's tools for
# train/test, sibling tools) resolve from the installed files.
HELP_ALL = """
import contextlib, io
from mmseg_cdcl.utils.shipped_files import run_tool, tool_commands
for name, path in tool_commands().items():
    if path.endswith('.py'):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = run_tool(name, ['--help'])
        print(name, status, 'usage:' in out.getvalue(), path)
"""


@pytest.mark.slow
def test_every_installed_tool_starts(installed, data_cwd):
    result = _run([installed['python'], '-c', HELP_ALL], cwd=data_cwd, env=installed['env'])
    lines = [line.split() for line in result.stdout.splitlines()]
    tools = osp.join(installed['package'], '.mim', 'tools')
    expected = sorted(
        osp.splitext(p)[0][len('tools/') :]
        for p in _shipped_in_clone()
        if p.startswith('tools/') and p.endswith('.py')
    )
    assert sorted(name for name, *_ in lines) == expected
    for name, status, usage, path in lines:
        assert (status, usage, path) == ('0', 'True', osp.join(tools, name + '.py')), name


@pytest.mark.slow
def test_installed_package_converts_and_trains_outside_the_clone(installed, data_cwd):
    python, env, package = installed['python'], installed['env'], installed['package']
    work = installed['tmp'] / 'work'
    work.mkdir()
    out = str(work / 'cdcl_pspnet_cityscapes_camvid.py')
    # The console script, with configs/ paths as README writes them: the installed ones (found
    # from mmseg_cdcl.__file__, so the installed package ran, not the clone).
    result = _run(
        [
            str(installed['venv'] / 'bin' / 'mmseg-cdcl'),
            'convert_config',
            'configs/baselines/pspnet_r18-d8_cityscapes.py',
            '--dataset',
            'cityscapes=mmseg::_base_/datasets/cityscapes.py',
            '--dataset',
            'camvid=configs/_base_/datasets/camvid.py',
            '-o',
            out,
        ],
        cwd=data_cwd,
        env=env,
    )
    stock = osp.join(package, '.mim', 'configs', 'baselines', 'pspnet_r18-d8_cityscapes.py')
    assert f'using the installed {stock}' in result.stderr
    cfg = Config.fromfile(out)
    assert cfg.model.type == 'CDCLEncoderDecoder'
    assert cfg.model.dataset_names == ['cityscapes', 'camvid']
    assert cfg.model.num_classes == [19, 11]
    assert f'_base_ = [\n    {stock!r}\n]' in open(out).read()

    cfg = shrink_config(cfg, max_iters=2)
    cfg.default_hooks.pop('visualization')
    small = str(work / 'small.py')
    unformatted(cfg).dump(small)
    _run(
        [python, '-m', 'mmseg_cdcl', 'train', small, '--work-dir', str(work / 'run')],
        cwd=data_cwd,
        env=env,
    )
    with mmengine_checkpoints_allowed():
        checkpoint = torch.load(work / 'run' / 'iter_2.pth', map_location='cpu')
    assert checkpoint['meta']['iter'] == 2
    weights = checkpoint['state_dict']
    # One classifier per dataset, in its own label space; DSBN keeps statistics per dataset.
    assert weights['decode_head.conv_seg.0.weight'].shape[0] == 19
    assert weights['decode_head.conv_seg.1.weight'].shape[0] == 11
    assert weights['backbone.stem.1.bns.1.running_mean'].shape == (32,)
    # (Config.dump sorts the MultiDataset's keys; the model routes samples by dataset name.)
    assert set(checkpoint['meta']['dataset_meta']['dataset_names']) == {'cityscapes', 'camvid'}
