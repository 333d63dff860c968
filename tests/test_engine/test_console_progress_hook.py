"""ConsoleProgressHook: a bar per training, a line per validation, on a terminal and off one."""

import io
import logging

import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmseg_cdcl.engine.hooks import ConsoleProgressHook


class _Regression(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else [out]


class _TwoDatasetMetric(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.append(1)

    def compute_metrics(self, results):
        return {'a/mIoU': 12.5, 'b/mIoU': 7.25, 'mIoU': 9.88}


class _Console(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def _train(tmp_path, console):
    loader = dict(
        dataset=[dict(inputs=torch.ones(2))] * 4,
        batch_size=2,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
    )
    runner = Runner(
        model=_Regression(),
        work_dir=str(tmp_path),
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=[_TwoDatasetMetric()],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=6, val_interval=3),
        val_cfg=dict(),
        custom_hooks=[ConsoleProgressHook(title='[1/4] toy', stream=console)],
        default_hooks=dict(logger=None, checkpoint=None),
        log_level=logging.ERROR,
    )
    runner.train()


def test_off_a_terminal_only_the_validation_lines_and_the_final_bar(tmp_path):
    console = _Console(tty=False)
    _train(tmp_path, console)
    lines = console.getvalue().split('\n')
    assert lines[:2] == [
        '  iteration 3: validation mIoU a 12.50 | b 7.25',
        '  iteration 6: validation mIoU a 12.50 | b 7.25',
    ]
    assert lines[2].startswith('[1/4] toy [########################] 6/6  loss ')
    assert lines[3:] == [''] and '\r' not in console.getvalue()


def test_on_a_terminal_the_bar_is_redrawn_under_the_validation_lines(tmp_path):
    console = _Console(tty=True)
    _train(tmp_path, console)
    text = console.getvalue()
    assert '\r[1/4] toy [........................] 0/6' in text
    assert '\r[1/4] toy [############............] 3/6  loss ' in text
    assert ' ETA 0:0' in text and '  validating 2/2' in text
    # Each validation line replaces the bar, which is drawn again below it.
    lines = text.split('\n')
    assert lines[0].endswith('\r  iteration 3: validation mIoU a 12.50 | b 7.25')
    assert lines[-2].split('\r')[-1].startswith('[1/4] toy [########################] 6/6  loss ')


def test_a_test_of_images_of_unknown_source_shows_the_auto_route():
    from mmseg_cdcl.engine.hooks.console_progress_hook import _per_dataset

    metrics = {
        'cityscapes/oracle/mIoU': 33.9,
        'cityscapes/auto/mIoU': 33.86,
        'camvid/auto/mIoU': 12.2,
        'camvid/ensemble/mIoU': 12.0,
        'choice/camvid/bdd100k': 3,
        'mIoU': 23.03,
    }
    assert _per_dataset(metrics) == 'mIoU (auto) cityscapes 33.86 | camvid 12.20'
    assert _per_dataset({'a/mIoU': 1.0, 'a/aAcc': 5.0, 'mIoU': 1.0}) == 'mIoU a 1.00'
    assert _per_dataset({'mIoU': 7.0}) == 'mIoU 7.00'
