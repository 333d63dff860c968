"""ResumeHook: a fresh run refuses a work dir with checkpoints; --resume survives a truncated
last_checkpoint. (Through DATTrainLoop: tests/test_engine/test_dat_train_loop.py,
tests/test_tools/test_train.py.)"""

import re
import time

import pytest
from mmengine.runner import Runner
from mmengine.testing.runner_test_case import ToyDataset, ToyModel

from mmseg_cdcl.engine.hooks import ResumeHook
from mmseg_cdcl.utils.mmengine_internals import resume_arguments


def _runner(work_dir, **kwargs):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            batch_size=3,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
        ),
        train_cfg=dict(by_epoch=False, max_iters=12),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='ResumeHook'), dict(type='CheckpointAllowListHook')],
        default_scope='mmseg',
        experiment_name=f'resume_hook_{time.time()}',
        **kwargs,
    )


def test_fresh_run_refuses_a_work_dir_with_checkpoints(tmp_path):
    for name in ('iter_2.pth', 'iter_10.pth', 'best_mIoU_iter_2.pth', 'iter_4.pth'):
        (tmp_path / name).write_bytes(b'')
    runner = _runner(tmp_path)
    assert sum(isinstance(h, ResumeHook) for h in runner.hooks) == 1
    with pytest.raises(
        FileExistsError,
        match=re.escape(
            f'work_dir {tmp_path} holds checkpoints of an earlier run (best_mIoU_iter_2.pth, '
            'iter_10.pth, iter_2.pth, ...): pass --resume to continue that run, or choose '
            'another --work-dir'
        ),
    ):
        runner.train()
    assert runner.iter == 0


def test_resume_continues_from_the_latest_checkpoint_after_a_truncated_last_checkpoint(
    tmp_path, capsys
):
    _runner(
        tmp_path,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=5, by_epoch=False)),
    ).train()  # 5, 10, 12
    (tmp_path / 'iter_12.pth').unlink()  # the kill came while iter_12's checkpoint was named
    (tmp_path / 'last_checkpoint').write_text('')
    runner = _runner(tmp_path, resume=True)
    hook = next(h for h in runner.hooks if isinstance(h, ResumeHook))
    capsys.readouterr()
    hook.before_run(runner)
    latest = str(tmp_path / 'iter_10.pth')  # by number: iter_10 after iter_5
    assert resume_arguments(runner) == (True, latest)
    assert (
        f"ResumeHook: {tmp_path / 'last_checkpoint'} names 'no checkpoint' (a run killed "
        f'while writing it?): resuming from the latest checkpoint, {latest}'
    ) in capsys.readouterr().out


@pytest.mark.parametrize('named', ['iter_5.pth', None])
def test_resume_keeps_a_complete_last_checkpoint_and_an_explicit_load_from(tmp_path, named):
    for name in ('iter_5.pth', 'iter_10.pth'):
        (tmp_path / name).write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_5.pth') if named else '')
    load_from = None if named else str(tmp_path / 'iter_5.pth')
    runner = _runner(tmp_path, resume=True, load_from=load_from)
    ResumeHook().before_run(runner)
    assert resume_arguments(runner) == (True, load_from)
    runner = _runner(tmp_path)  # no --resume: nothing to repair
    ResumeHook().before_run(runner)
    assert resume_arguments(runner) == (False, None)
