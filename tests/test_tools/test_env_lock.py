"""The environment lock: .venv holds exactly requirements/lock.txt, which honours the pins."""

import os.path as osp
import subprocess
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

TOOL = osp.join(REPO, 'tools', 'env_lock.py')
LOCK = osp.join(REPO, 'requirements', 'lock.txt')


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def _locked():
    lines = [line.split('#')[0].strip() for line in open(LOCK)]
    return dict(line.split('==') for line in lines if line)


def test_the_environment_running_the_tests_is_the_lock():
    result = _run('check')
    assert result.returncode == 0, result.stderr
    assert result.stdout == f'env_lock: {sys.prefix} matches {LOCK}\n'


def test_every_pin_runtime_and_test_requirement_is_satisfied_by_the_lock():
    """The pins, what the tests add, and the ranges the package declares (runtime.txt: the
    set-up installs the package under the lock, setuptools<81 included)."""
    locked = _locked()
    for name in ('pinned.txt', 'runtime.txt', 'tests.txt'):
        for line in open(osp.join(REPO, 'requirements', name)):
            line = line.split('#')[0].strip()
            if line:
                requirement = Requirement(line)
                version = locked[canonicalize_name(requirement.name)]
                assert requirement.specifier.contains(version, prereleases=True), (name, line)


def test_check_names_every_difference(tmp_path):
    locked = _locked()
    locked['numpy'] = '1.0.0'  # another version
    del locked['pyyaml']  # installed, not locked
    locked['left-pad'] = '1.3'  # locked, not installed
    lock = tmp_path / 'lock.txt'
    lock.write_text('# a comment\n' + ''.join(f'{n}=={v}\n' for n, v in locked.items()))
    result = _run('check', '--lock', str(lock))
    assert result.returncode == 1
    assert result.stderr.splitlines()[1:] == [
        '  left-pad: locked 1.3, not installed',
        f'  numpy: locked 1.0.0, installed {_locked()["numpy"]}',
        f'  pyyaml: installed {_locked()["pyyaml"]}, not in the lock',
    ]
    assert f'differs from {lock} in 3 packages' in result.stderr


def test_write_records_the_environment_and_bad_lines_are_named(tmp_path):
    lock = tmp_path / 'lock.txt'
    assert _run('write', '--lock', str(lock)).returncode == 0
    written = [line for line in lock.read_text().splitlines() if not line.startswith('#')]
    assert written == [line for line in open(LOCK).read().splitlines() if not line.startswith('#')]
    lock.write_text('numpy>=1\n')
    result = _run('check', '--lock', str(lock))
    assert result.returncode == 2
    assert f"{lock}:1: expected 'name==version', got 'numpy>=1'" in result.stderr
