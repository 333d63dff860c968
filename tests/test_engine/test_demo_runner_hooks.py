"""QuietConsoleRunner, PerImageCountsHook and FirstIterationTimeHook: what the demo's and the
benchmark's runs use, at unit level (tests/test_tools/test_run_demo.py runs them end to end)."""

import logging
import time
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from mmseg.registry import HOOKS, RUNNERS
from mmseg.structures import SegDataSample

from mmseg_cdcl.engine import FirstIterationTimeHook, PerImageCountsHook, QuietConsoleRunner


class _Tiny(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        return dict(loss=self.w.sum())


def test_quiet_console_runner_logs_errors_on_the_console_and_everything_to_its_file(tmp_path):
    assert RUNNERS.get('QuietConsoleRunner') is QuietConsoleRunner  # runner_type in configs
    runner = QuietConsoleRunner(model=_Tiny(), work_dir=str(tmp_path), experiment_name='quiet')
    handlers = {type(h): h.level for h in runner.logger.handlers}
    assert handlers[logging.StreamHandler] == logging.ERROR
    assert handlers[logging.FileHandler] == logging.INFO
    runner.logger.info('a line for the file only')
    log = open(runner.logger.handlers[-1].baseFilename).read()
    assert 'a line for the file only' in log


def _sample(dataset_idx, pred, gt, path):
    sample = SegDataSample(metainfo=dict(dataset_idx=dataset_idx, img_path=path))
    sample.pred_sem_seg = PixelData(data=torch.tensor([pred]))
    sample.gt_sem_seg = PixelData(data=torch.tensor([gt]))
    return sample


def test_per_image_counts_are_each_images_intersection_and_union_in_its_label_space():
    hook = HOOKS.build(dict(type='PerImageCountsHook'))
    assert isinstance(hook, PerImageCountsHook)
    meta = dict(
        dataset_names=['a', 'b'],
        datasets=dict(
            a=dict(classes=('x', 'y'), ignore_index=255),
            b=dict(classes=('x', 'y', 'z'), ignore_index=255),
        ),
    )
    runner = SimpleNamespace(
        test_dataloader=SimpleNamespace(dataset=SimpleNamespace(metainfo=meta))
    )
    outputs = [
        _sample(0, [[0, 1], [1, 1]], [[0, 0], [1, 255]], 'a0.png'),
        _sample(1, [[2, 2], [0, 1]], [[2, 1], [0, 0]], 'b0.png'),
    ]
    hook.after_test_iter(runner, 0, outputs=outputs)
    (i_a, u_a), (i_b, u_b) = hook.counts['a']['a0.png'], hook.counts['b']['b0.png']
    # a: class x predicted at 1 of its 2 labelled pixels; y at 2 predicted, 1 labelled (one
    # ignored pixel left out)
    np.testing.assert_array_equal(i_a, [1, 1])
    np.testing.assert_array_equal(u_a, [2, 2])
    np.testing.assert_array_equal(i_b, [1, 0, 1])  # b has three classes
    np.testing.assert_array_equal(u_b, [2, 2, 2])


def test_first_iteration_time_is_recorded_once():
    start = time.perf_counter() - 5.0
    hook = FirstIterationTimeHook(start)
    hook.after_train_iter(None, 0)
    first = hook.times['first_iter']
    hook.after_train_iter(None, 1)
    assert hook.times == dict(first_iter=first) and 5.0 <= first < 60.0
    assert FirstIterationTimeHook().start <= time.perf_counter()
