"""A work dir holds one run: a fresh run does not start over its checkpoints, ``--resume``
continues it even after a kill while ``last_checkpoint`` was written."""

import logging
import os
import re

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ...utils.mmengine_internals import resume_arguments, set_resume_checkpoint


@HOOKS.register_module()
class ResumeHook(Hook):
    """Keeps the checkpoints of a work dir those of one run.

    - Before training, a fresh run (iteration 0) refuses to start in a work dir that holds
      checkpoints: it would overwrite them (and, with ``max_keep_ckpts``, delete them).
    - ``--resume`` reads the checkpoint to resume from ``work_dir/last_checkpoint``, which
      mmengine writes with a plain ``open``: a kill during that write leaves it empty or naming
      no file. The run then resumes from the latest complete ``iter_N.pth`` (checkpoints are
      written atomically) and says so in the log.

    ``DATTrainLoop`` adds it when the config has none.

    Example:
        >>> custom_hooks = [dict(type='ResumeHook')]
    """

    priority = 'VERY_HIGH'  # refuse before any other hook starts training

    def before_run(self, runner) -> None:
        # Runner.load_or_resume runs after the before_run hooks.
        resume, load_from = resume_arguments(runner)
        if not resume or load_from is not None:
            return
        last = os.path.join(runner.work_dir, 'last_checkpoint')
        if not os.path.isfile(last):
            return
        with open(last) as f:
            named = f.read().strip()
        if named and os.path.isfile(named):
            return
        saved = [
            (int(m.group(1)), name)
            for name in os.listdir(runner.work_dir)
            if (m := re.fullmatch(r'iter_(\d+)\.pth', name))
        ]
        if not saved:
            return
        latest = os.path.join(runner.work_dir, max(saved)[1])
        print_log(
            f'ResumeHook: {last} names {named or "no checkpoint"!r} (a run killed while '
            f'writing it?): resuming from the latest checkpoint, {latest}',
            logger='current',
            level=logging.WARNING,
        )
        set_resume_checkpoint(runner, latest)

    def before_train(self, runner) -> None:
        if runner.iter != 0:
            return
        work_dir = runner.work_dir
        earlier = sorted(f for f in os.listdir(work_dir) if f.endswith('.pth'))
        if earlier:
            raise FileExistsError(
                f'work_dir {work_dir} holds checkpoints of an earlier run ({", ".join(earlier[:3])}'
                f'{", ..." if len(earlier) > 3 else ""}): pass --resume to continue that run, or '
                'choose another --work-dir'
            )
