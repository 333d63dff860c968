"""Dataset Alternation Training (DAT): one batch of every dataset, one step on their sum."""
import os
from contextlib import nullcontext
from typing import List, Tuple

from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmseg.registry import LOOPS

from ...datasets.samplers import MultiDatasetSampler
from ...models.layers import DatasetAwareModule, DatasetRouting


def split_by_dataset(data_batch: dict) -> List[Tuple[int, dict]]:
    """The batch's samples of each dataset, as ``(dataset index, batch)`` pairs."""
    samples = data_batch['data_samples']
    routing = DatasetRouting.build([s.metainfo['dataset_idx'] for s in samples])
    parts = []
    for d, rows in routing.groups:
        rows = range(len(samples))[rows] if isinstance(rows, slice) else rows.tolist()
        parts.append((d, {key: [value[i] for i in rows] for key, value in data_batch.items()}))
    return parts


class _Resumed:
    """Stands in for the data iterator while IterBasedTrainLoop replays the ``k`` iterations
    before a resume point: answers those ``next`` calls without loading a batch."""

    def __init__(self, skip: int, iterator):
        self.skip, self.iterator = skip, iterator

    def __next__(self):
        if self.skip:
            self.skip -= 1
            return None
        return next(self.iterator)


@LOOPS.register_module()
class DATTrainLoop(IterBasedTrainLoop):
    """Iteration-based training with Dataset Alternation Training.

    Each iteration's batch (from ``MultiDatasetSampler``) holds a batch of every dataset, and
    ``mode`` chooses the update:

    - ``'sum'`` (DAT, the paper's choice): one forward of the whole batch, one backward of
      L = Σ_i w_i·L_i and one optimizer step;
    - ``'accumulate'``: the same update, forwarding and back-propagating one dataset at a time
      (gradients accumulate), which lowers peak memory;
    - ``'alternate'``: a forward, backward and step per dataset, the paper's unstable baseline.

    At start it checks that dataset, sampler and model agree on the datasets (names, DSBN
    branches, classes per classifier), and that a fresh run does not start over the checkpoints
    of an earlier one. A resumed run continues with the batches an
    uninterrupted run would draw without loading the skipped ones. Each dataset's losses are
    logged (``<dataset>.decode.loss_ce``, ``<dataset>.loss``); a non-finite loss stops training
    with the dataset and iteration named, before it touches the weights.

    Example:
        >>> train_cfg = dict(type='DATTrainLoop', max_iters=80000, val_interval=8000,
        ...                  mode='sum')

    Args:
        mode (str): ``'sum'``, ``'accumulate'`` or ``'alternate'``. Defaults to ``'sum'``.
        **kwargs: Arguments of :class:`mmengine.runner.IterBasedTrainLoop`.
    """
    MODES = ('sum', 'accumulate', 'alternate')

    def __init__(self, runner, dataloader, max_iters: int, mode: str = 'sum', **kwargs):
        if mode not in self.MODES:
            raise ValueError(f'DATTrainLoop mode={mode!r}: expected one of {self.MODES}')
        super().__init__(runner, dataloader, max_iters, **kwargs)
        self.mode = mode

    def run(self):
        self.check_datasets_agree()
        if self._iter == 0:
            self.check_work_dir_is_free()
        if self._iter > 0:
            self.dataloader.batch_sampler.set_step(self._iter)
            self.dataloader_iterator = _Resumed(
                self._iter, _InfiniteDataloaderIterator(self.dataloader))
        return super().run()

    def run_iter(self, data_batch: dict) -> None:
        self.runner.call_hook('before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        outputs = self._train_step(data_batch)
        self.runner.call_hook('after_train_iter', batch_idx=self._iter, data_batch=data_batch,
                              outputs=outputs)
        self._iter += 1

    def _train_step(self, data_batch: dict) -> dict:
        model, optim_wrapper = self.runner.model, self.runner.optim_wrapper
        if self.mode == 'sum':
            return model.train_step(data_batch, optim_wrapper=optim_wrapper)
        log_vars, parts = {}, split_by_dataset(data_batch)
        for k, (_, part) in enumerate(parts):
            if self.mode == 'alternate':
                logs = model.train_step(part, optim_wrapper=optim_wrapper)
            else:
                logs = self._accumulate(model, optim_wrapper, part, last=k == len(parts) - 1)
            log_vars.update(logs, loss=log_vars.get('loss', 0) + logs['loss'])
        return log_vars

    @staticmethod
    def _accumulate(model, optim_wrapper, part: dict, last: bool) -> dict:
        """Back-propagate one dataset's loss; step once the last dataset's is in."""
        # DDP averages the gradients once, after the last dataset's backward.
        no_sync = model.no_sync() if is_model_wrapper(model) and not last else nullcontext()
        with no_sync:
            with optim_wrapper.optim_context(model):
                data = model.data_preprocessor(part, True)
                losses = model._run_forward(data, mode='loss')
            loss, log_vars = model.parse_losses(losses)
            optim_wrapper.backward(loss)
        if last:
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        return log_vars

    def check_work_dir_is_free(self) -> None:
        """A fresh run would overwrite (and, with ``max_keep_ckpts``, delete) the checkpoints
        of an earlier run in the same work dir: refuse before training."""
        work_dir = self.runner.work_dir
        earlier = sorted(f for f in os.listdir(work_dir) if f.endswith('.pth'))
        if earlier:
            raise FileExistsError(
                f'work_dir {work_dir} holds checkpoints of an earlier run ({", ".join(earlier[:3])}'
                f'{", ..." if len(earlier) > 3 else ""}): pass --resume to continue that run, or '
                'choose another --work-dir')

    def check_datasets_agree(self) -> None:
        """Raise, listing every disagreement, unless the training dataset, the sampler and the
        model have the same datasets (names), branches and classes per classifier."""
        dataset = self.dataloader.dataset
        sampler = self.dataloader.batch_sampler
        model = self.runner.model.module if is_model_wrapper(self.runner.model) else \
            self.runner.model
        names = getattr(dataset, 'dataset_names', None)
        problems = []
        if names is None:
            problems.append(f'the training dataset is a {type(dataset).__name__}, '
                            'not a MultiDataset')
        if not isinstance(sampler, MultiDatasetSampler):
            problems.append(f'train_dataloader.batch_sampler is a {type(sampler).__name__}, '
                            'not a MultiDatasetSampler')
        elif names is not None and set(sampler.dataset_names) != set(names):
            problems.append(f'the sampler has datasets {sampler.dataset_names}, the training '
                            f'dataset {names}')
        model_names = list(getattr(model, 'dataset_names', []))
        if names is not None and set(model_names) != set(names):
            problems.append(f'model.dataset_names={model_names} but the training dataset has '
                            f'{names}')
            names = None  # nothing more to compare
        for module_name, module in model.named_modules():
            if not isinstance(module, DatasetAwareModule) or names is None:
                continue
            if module.num_datasets != len(names):
                problems.append(f'{module_name} ({type(module).__name__}) has num_datasets='
                                f'{module.num_datasets}, the training dataset {len(names)}')
                continue
            # The model routes by name: its d-th classifier serves its d-th dataset name.
            for d, num_classes in enumerate(getattr(module, 'dataset_num_classes', ())):
                classes = dataset.metainfo['datasets'][model_names[d]].get('classes') or ()
                if len(classes) != num_classes:
                    problems.append(f'{module_name}.num_classes[{d}]={num_classes} but dataset '
                                    f"'{model_names[d]}' has {len(classes)} classes")
        if problems:
            raise ValueError('DATTrainLoop: the datasets, sampler and model disagree:\n  - '
                             + '\n  - '.join(problems))
