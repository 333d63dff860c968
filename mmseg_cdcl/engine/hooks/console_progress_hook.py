"""A console made for a person: a progress bar per training and one line per evaluation."""

import sys
import time
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class ConsoleProgressHook(Hook):
    """One progress bar per training (title, iteration, loss, ETA) and one short line per
    validation or test with each dataset's mIoU, written to the console by the main process.

    The bar is redrawn in place on a terminal; when the console is a file or a pipe only its
    final state is written, so a captured console stays a few lines long. The hook does not
    touch the runner's log: pair it with a logger whose console handler shows errors only, as
    ``tools/run_demo.py`` does, and the complete log still goes to
    ``<work_dir>/<timestamp>/<timestamp>.log``.

    Example:
        >>> custom_hooks = [dict(type='ConsoleProgressHook', title='CDCL')]

    Args:
        title (str): What the bar is labelled with, e.g. the model's name.
        width (int): Characters of the bar itself.
        loss_window (int): The loss shown is the mean over this many latest iterations.
        stream: Where to write; defaults to ``sys.stdout`` at the time of writing.
    """

    priority = 'VERY_LOW'

    def __init__(
        self, title: str = 'training', width: int = 24, loss_window: int = 10, stream=None
    ):
        self.title, self.width, self.loss_window = title, width, loss_window
        self._stream = stream
        self._start, self._first = None, 0
        self._shown = ''  # the bar as last drawn

    @property
    def stream(self):
        return self._stream or sys.stdout

    @property
    def _live(self) -> bool:
        """Whether the bar is redrawn as it advances (on a terminal only)."""
        return self.stream.isatty()

    def _bar(self, runner, done: int, note: str = '') -> str:
        total = runner.max_iters
        filled = self.width * done // max(total, 1)
        line = f'{self.title} [{"#" * filled}{"." * (self.width - filled)}] {done}/{total}'
        if 'train/loss' in runner.message_hub.log_scalars:
            loss = runner.message_hub.get_scalar('train/loss').mean(self.loss_window)
            line += f'  loss {loss:.3f}'
        elapsed = time.time() - self._start
        if done < total:
            if done > self._first:
                line += f'  ETA {_minutes(elapsed / (done - self._first) * (total - done))}'
        else:
            line += f'  {_minutes(elapsed)}'
        return line + (f'  {note}' if note else '')

    def _draw(self, text: str) -> None:
        if self._live:
            # Pad over the longer line drawn before.
            self.stream.write('\r' + text.ljust(len(self._shown)))
            self.stream.flush()
            self._shown = text

    def _line(self, text: str) -> None:
        """A line of its own above the bar."""
        if self._shown:
            self.stream.write('\r' + ' ' * len(self._shown) + '\r')
        self.stream.write(text + '\n')
        self.stream.flush()
        self._shown = ''

    def before_train(self, runner) -> None:
        self._start, self._first = time.time(), runner.iter  # a resumed run starts later
        if is_main_process():
            self._draw(self._bar(runner, runner.iter))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if is_main_process():  # runner.iter counts this iteration only after the hooks
            self._draw(self._bar(runner, batch_idx + 1))

    def after_train(self, runner) -> None:
        if is_main_process():
            self._line(self._bar(runner, runner.iter))

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if is_main_process() and self._start is not None:
            self._draw(
                self._bar(
                    runner, runner.iter, f'validating {batch_idx + 1}/{len(runner.val_dataloader)}'
                )
            )

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():
            self._line(f'  iteration {runner.iter}: validation {_per_dataset(metrics)}')
            if self._start is not None:
                self._draw(self._bar(runner, runner.iter))

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if is_main_process():
            self._draw(f'  testing {batch_idx + 1}/{len(runner.test_dataloader)}')

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():
            self._line(f'  test {_per_dataset(metrics)}')


def _per_dataset(metrics: Optional[Dict[str, float]]) -> str:
    """``mIoU cityscapes 21.93 | bdd100k 20.36`` (each dataset's, else the overall mIoU); of
    images of unknown source (``UnknownSourceMetric``), the auto route's."""
    metrics = metrics or {}
    auto = [
        (key.split('/')[0], value) for key, value in metrics.items() if key.endswith('/auto/mIoU')
    ]
    scores = auto or [
        (key.split('/')[0], value)
        for key, value in metrics.items()
        if key.endswith('/mIoU') and key.count('/') == 1
    ]
    text = ' | '.join(f'{name} {value:.2f}' for name, value in scores)
    if not scores and 'mIoU' in metrics:
        text = f'{metrics["mIoU"]:.2f}'
    return ('mIoU (auto) ' if auto else 'mIoU ') + (text or 'n/a')


def _minutes(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 60}:{seconds % 60:02d}'
