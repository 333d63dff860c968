"""run_mmseg_tool runs MMSeg's tools in the caller's process and leaves it as it found it:
sys.argv, torch.cuda.set_device, the garbage collector's frozen objects, mmengine's FormatCode."""

import gc
import sys

import mmengine.config.config as mmengine_config
import pytest
import torch

from mmseg_cdcl.utils import run_mmseg_tool


@pytest.fixture
def unfrozen():
    """A process that has frozen nothing (conftest freezes the imports of the tests')."""
    gc.unfreeze()
    yield
    gc.freeze()


def _state():
    # Whether objects are frozen (their count falls as frozen objects are freed).
    frozen = gc.get_freeze_count() > 0
    return sys.argv, list(sys.argv), torch.cuda.set_device, frozen, mmengine_config.FormatCode


def _restored(before):
    argv, contents, set_device, frozen, format_code = before
    return (
        sys.argv is argv,
        sys.argv == contents,
        torch.cuda.set_device is set_device,
        (gc.get_freeze_count() > 0) == frozen,
        mmengine_config.FormatCode is format_code,
    )


RESTORED = (True,) * 5


def test_a_tool_runs_and_the_process_is_as_it_was(tmp_path, monkeypatch, capsys, unfrozen):
    (tmp_path / 'config.py').write_text('model = dict(type="X", depth=18)\n')
    monkeypatch.chdir(tmp_path)  # print_config dumps example.py here
    monkeypatch.setattr(sys, 'argv', ['print_config.py', str(tmp_path / 'config.py')])
    before = _state()
    assert not before[3]
    run_mmseg_tool('misc/print_config.py')
    assert "model = dict(depth=18, type='X')" in capsys.readouterr().out
    assert (tmp_path / 'example.py').is_file()
    assert _restored(before) == RESTORED


def test_a_failing_cpu_launch_leaves_the_process_as_it_was(tmp_path, monkeypatch, capsys, unfrozen):
    (tmp_path / 'config.py').write_text('a = 1\n')
    argv = ['print_config.py', str(tmp_path / 'config.py'), '--launcher', 'pytorch']
    monkeypatch.setattr(sys, 'argv', argv)
    before = _state()
    with pytest.raises(SystemExit):  # print_config takes no --launcher (the CPU options it does)
        run_mmseg_tool('misc/print_config.py')
    assert 'error: unrecognized arguments: --launcher pytorch\n' in capsys.readouterr().err
    assert _restored(before) == RESTORED


def test_a_tool_not_found_changes_nothing(monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['train.py', 'config.py', '--launcher', 'pytorch'])
    before = _state()
    assert before[3]  # conftest's: kept frozen, not thawed
    with pytest.raises(FileNotFoundError, match=r"MMSeg's tools/no_such_tool.py is neither in"):
        run_mmseg_tool('no_such_tool.py')
    assert _restored(before) == RESTORED
