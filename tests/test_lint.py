"""The code is clean under the project's lint (pyproject.toml [tool.ruff]: pycodestyle, pyflakes
and isort's order, as OpenMMLab's flake8 + isort) and laid out by its formatter (ruff format,
as OpenMMLab's yapf), as .pre-commit-config.yaml checks it."""

import subprocess
import sys

from conftest import REPO


def test_ruff_finds_nothing():
    result = subprocess.run(
        [sys.executable, '-m', 'ruff', 'check', '--no-cache', '--output-format', 'concise', '.'],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert result.stdout.strip() == 'All checks passed!'


def test_ruff_format_would_change_nothing():
    result = subprocess.run(
        [sys.executable, '-m', 'ruff', 'format', '--no-cache', '--check', '.'],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert result.stdout.strip().endswith('files already formatted')
