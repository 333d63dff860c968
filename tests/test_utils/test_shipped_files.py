"""The shipped configs and tools: found in the clone, run by command name, configs/ arguments
resolved to the shipped files (the installed wheel: tests/test_tools/test_wheel.py)."""

import os
import os.path as osp
import sys

import pytest

from conftest import REPO
from mmseg_cdcl.__main__ import main
from mmseg_cdcl.utils import shipped_files
from mmseg_cdcl.utils.shipped_files import (
    run_tool,
    shipped_args,
    shipped_root,
    tool_command,
    tool_commands,
)


def test_clone_is_the_shipped_root_and_every_tool_a_command():
    assert shipped_root() == REPO
    commands = tool_commands()
    expected = {}
    for folder, _, files in os.walk(osp.join(REPO, 'tools')):
        for name in files:
            stem, ext = osp.splitext(name)
            if ext in ('.py', '.sh') and name not in ('setup_env.sh', 'env_lock.py'):
                rel = osp.relpath(osp.join(folder, stem), osp.join(REPO, 'tools'))
                expected[rel] = osp.join(folder, name)
    assert commands == expected
    assert commands['analysis/bn_statistics'] == osp.join(
        REPO, 'tools', 'analysis', 'bn_statistics.py'
    )
    assert commands['dist_train'] == osp.join(REPO, 'tools', 'dist_train.sh')
    assert 'setup_env' not in commands and 'env_lock' not in commands  # the clone's .venv


def test_no_shipped_files_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(shipped_files, 'PACKAGE', str(tmp_path / 'mmseg_cdcl'))
    with pytest.raises(
        FileNotFoundError,
        match=r'mmseg_cdcl/\.mim \(an installed wheel\) nor .* '
        r'holds configs/cdcl_cityscapes_bdd.py and tools/train.py',
    ):
        shipped_root()


def test_configs_arguments_resolve_to_shipped_files_unless_the_folder_has_them(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.chdir(tmp_path)
    args = [
        'configs/cdcl_cityscapes_bdd.py',
        '--dataset',
        'camvid=configs/_base_/datasets/camvid.py',
        '-o',
        'configs/new.py',
        '--cfg-options',
        'train_cfg.max_iters=2',
    ]
    assert shipped_args(args) == [
        osp.join(REPO, 'configs', 'cdcl_cityscapes_bdd.py'),
        '--dataset',
        'camvid=' + osp.join(REPO, 'configs', '_base_', 'datasets', 'camvid.py'),
        '-o',
        'configs/new.py',
        '--cfg-options',
        'train_cfg.max_iters=2',
    ]
    err = capsys.readouterr().err
    assert err.count('using the installed') == 2
    assert f'configs/_base_/datasets/camvid.py: not in {tmp_path}, using the installed ' in err
    # A path a tool writes stays the user's, even where it names a shipped config.
    written = [
        '-o',
        'configs/cdcl_cityscapes_bdd.py',
        '--out=configs/cdcl_cityscapes_bdd.py',
        '--work-dir',
        'configs/cdcl_cityscapes_bdd.py',
    ]
    assert shipped_args(written) == written
    # A config of the user's own at the same path wins.
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'configs' / 'cdcl_cityscapes_bdd.py').write_text('x = 1\n')
    assert shipped_args(args[:1]) == ['configs/cdcl_cityscapes_bdd.py']


def test_run_tool_runs_the_script_as_python_would_and_returns_its_status(monkeypatch, capsys):
    monkeypatch.setattr(sys, 'path', list(sys.path))
    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    assert run_tool('export_single_dataset', ['--help']) == 0
    assert 'usage: export_single_dataset.py' in capsys.readouterr().out
    assert sys.path[0] == osp.join(REPO, 'tools')
    assert run_tool('export_single_dataset', ['only.py']) == 2  # argparse: missing arguments
    assert 'the following arguments are required: checkpoint' in capsys.readouterr().err
    with pytest.raises(KeyError, match=r"no command 'trian'; the commands are .*train"):
        run_tool('trian', [])


def test_python_m_mmseg_cdcl_lists_the_commands_and_the_shipped_folder(capsys):
    main([])
    out = capsys.readouterr().out
    assert 'commands: add_dataset_branch, benchmark, convert_config,' in out
    assert 'analysis/bn_statistics, analysis/learn_label_space, analysis/new_camera_branch' in out
    assert f'configs and tools: {REPO}' in out
    with pytest.raises(SystemExit, match="python -m mmseg_cdcl: no command 'nope'"):
        main(['nope'])


def test_shell_tools_print_their_usage(capfd):
    assert run_tool('dist_train', ['--help']) == 0
    assert capfd.readouterr().out.startswith(
        'usage: dist_train.sh CONFIG GPUS [train.py options]\n'
    )
    assert run_tool('dist_test', ['only.py']) == 2
    err = capfd.readouterr().err
    assert err.startswith('usage: dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]\n')
    assert err.endswith('dist_test.sh: expected CONFIG, CHECKPOINT and GPUS, got 1 argument(s)\n')


def test_suggested_commands_are_the_ones_that_run_where_the_user_is(monkeypatch, tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    with_env, without = f'{bin_dir}:/usr/bin:/bin', '/usr/bin:/bin'
    # The clone's root: the tool's path, with `python` where it is this environment's.
    monkeypatch.chdir(REPO)
    monkeypatch.setenv('PATH', with_env)
    assert tool_command('train') == 'python tools/train.py'
    monkeypatch.setenv('PATH', without)
    python = os.path.relpath(sys.executable)  # .venv/bin/python
    if python.startswith('..'):
        python = sys.executable
    assert tool_command('analysis/bn_statistics') == f'{python} tools/analysis/bn_statistics.py'
    # Elsewhere (the wheel installed: always): the console script.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('PATH', with_env)
    assert tool_command('train') == 'mmseg-cdcl train'
    monkeypatch.setenv('PATH', without)
    assert tool_command('train') == f'{sys.executable} -m mmseg_cdcl train'
