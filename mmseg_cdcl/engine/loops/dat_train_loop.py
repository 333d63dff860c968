"""Dataset Alternation Training (DAT): one batch of every dataset, one step on their sum."""
import os
import re
from contextlib import nullcontext
from typing import List, Sequence, Tuple

import torch
from mmengine.dist import all_reduce, all_reduce_params, get_world_size
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmseg.registry import LOOPS
from torch.nn.modules.batchnorm import _BatchNorm

from ...datasets.samplers import MultiDatasetSampler
from ...models.decode_heads import is_dataset_aware
from ...models.layers import DSBN, DatasetAwareModule, DatasetRouting
from ..hooks import RNGStateHook


def split_by_dataset(data_batch: dict) -> List[Tuple[int, dict]]:
    """The batch's samples of each dataset, as ``(dataset index, batch)`` pairs."""
    samples = data_batch['data_samples']
    routing = DatasetRouting.build([s.metainfo['dataset_idx'] for s in samples])
    return [(d, {key: [value[i] for i in rows] for key, value in data_batch.items()})
            for d, rows in zip(routing.datasets, routing.positions(len(samples)))]


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
    - ``'accumulate'``: the same update when every BatchNorm is dataset-specific (DSBN),
      forwarding and back-propagating one dataset at a time (gradients accumulate), which lowers
      peak memory; refused for models with shared BatchNorm, whose statistics would then be
      each dataset's instead of the batch's;
    - ``'alternate'``: a forward, backward and step per dataset, the paper's unstable baseline.

    ``optim_wrapper.accumulative_counts`` accumulates whole iterations, in every mode. Under
    DDP, an update in which some dataset has no sample (``'alternate'``, ``'accumulate'``,
    intervals > 1) back-propagates without DDP's reducer, which would wait for the absent
    dataset's branches, and averages the gradients over the processes before the step; the
    absent branches keep no gradient, as in one process.

    At start it checks that dataset, sampler and model agree on the datasets (names, DSBN
    branches, classes per classifier), and that a fresh run does not start over the checkpoints
    of an earlier one. The sampler's seed, batch sizes, intervals and number of processes go
    into every checkpoint: a resumed run continues with the batches an uninterrupted run would
    draw (refusing another number of processes) without loading the skipped ones, and
    ``RNGStateHook`` (added when the config has none) restores the random states. Each
    dataset's losses are logged (``<dataset>.decode.loss_ce``, ``<dataset>.loss``); a
    non-finite loss stops training with the dataset and iteration named, before it touches the
    weights.

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
        if not any(isinstance(hook, RNGStateHook) for hook in runner.hooks):
            runner.register_hook(RNGStateHook())
        self.find_resume_point()

    def find_resume_point(self) -> None:
        """``--resume`` reads the checkpoint to resume from ``work_dir/last_checkpoint``, which
        mmengine writes with a plain ``open``: a kill during that write leaves it empty. Then
        resume from the latest complete ``iter_N.pth`` (checkpoints are written atomically)."""
        runner = self.runner
        if not getattr(runner, '_resume', False) or runner._load_from is not None:
            return
        last = os.path.join(runner.work_dir, 'last_checkpoint')
        if not os.path.isfile(last):
            return
        with open(last) as f:
            named = f.read().strip()
        if named and os.path.isfile(named):
            return
        saved = [(int(m.group(1)), name) for name in os.listdir(runner.work_dir)
                 if (m := re.fullmatch(r'iter_(\d+)\.pth', name))]
        if not saved:
            return
        latest = os.path.join(runner.work_dir, max(saved)[1])
        print_log(f'DATTrainLoop: {last} names {named or "no checkpoint"!r} (a run killed while '
                  f'writing it?): resuming from the latest checkpoint, {latest}',
                  logger='current', level=30)
        runner._load_from = latest

    def run(self):
        self.check_datasets_agree()
        if self.mode == 'accumulate':
            self.check_batch_norms_are_per_dataset()
        sampler = self.dataloader.batch_sampler
        if self._iter == 0:
            self.check_work_dir_is_free()
        else:
            self.continue_sampler(sampler)
            sampler.set_step(self._iter)
            self.dataloader_iterator = _Resumed(
                self._iter, _InfiniteDataloaderIterator(self.dataloader))
        self.runner.message_hub.update_info('dat_sampler', sampler.state())
        return super().run()

    def continue_sampler(self, sampler: MultiDatasetSampler) -> None:
        """Draw the interrupted run's batches: its seed, after checking that batch sizes,
        intervals and the number of processes are its own."""
        saved = self.runner.message_hub.get_info('dat_sampler')
        if saved is None:  # a checkpoint of mmseg-cdcl 0.1
            print_log('DATTrainLoop: the checkpoint does not hold the sampler\'s state; the '
                      'resumed batches repeat the interrupted run only with randomness.seed '
                      'set as it was', logger='current', level=30)
            return
        now = sampler.state()
        if saved['world_size'] != now['world_size']:
            raise ValueError(
                f"DATTrainLoop: the checkpoint was written by a run of {saved['world_size']} "
                f"process(es) and this run has {now['world_size']}: each process draws its own "
                'batch of every dataset, so the resumed batches would repeat samples and change '
                'the batch size. Resume with the same number of processes, or start a new run '
                'from the checkpoint with load_from')
        for key in ('batch_sizes', 'intervals'):
            if saved[key] != now[key]:
                raise ValueError(f'DATTrainLoop: the checkpoint\'s run drew {key}='
                                 f'{saved[key]} and this run\'s sampler has {now[key]}: resume '
                                 'with the same, or start a new run with load_from')
        sampler.set_seed(saved['seed'])

    def run_iter(self, data_batch: dict) -> None:
        self.runner.call_hook('before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        outputs = self._train_step(data_batch)
        self.runner.call_hook('after_train_iter', batch_idx=self._iter, data_batch=data_batch,
                              outputs=outputs)
        self._iter += 1

    def _train_step(self, data_batch: dict) -> dict:
        model, optim_wrapper = self.runner.model, self.runner.optim_wrapper
        parts = split_by_dataset(data_batch)
        distributed = is_model_wrapper(model) and hasattr(model, 'no_sync')
        every_dataset = len(parts) == len(self.dataloader.dataset.dataset_names)
        if self.mode == 'sum':
            if every_dataset or not distributed:
                return model.train_step(data_batch, optim_wrapper=optim_wrapper)
            return self._update(model, optim_wrapper, [data_batch])
        if self.mode == 'accumulate':
            return self._update(model, optim_wrapper, [part for _, part in parts])
        log_vars = {}
        for _, part in parts:  # 'alternate': an update per dataset
            logs = (self._update(model, optim_wrapper, [part]) if distributed else
                    model.train_step(part, optim_wrapper=optim_wrapper))
            log_vars.update(logs, loss=log_vars.get('loss', 0) + logs['loss'])
        return log_vars

    @staticmethod
    def _update(model, optim_wrapper, parts: Sequence[dict]) -> dict:
        """One update (a step once ``accumulative_counts`` iterations are in) from the summed
        losses of ``parts``, each forwarded and back-propagated on its own."""
        distributed = is_model_wrapper(model) and hasattr(model, 'no_sync')
        module = model.module if is_model_wrapper(model) else model
        log_vars = {}
        for k, part in enumerate(parts):
            # DDP's reducer would wait for the gradients of parameters no part uses (an absent
            # dataset's branches): the gradients are averaged below instead.
            with model.no_sync() if distributed else nullcontext():
                with optim_wrapper.optim_context(model):
                    data = module.data_preprocessor(part, True)
                    losses = model._run_forward(data, mode='loss')
                loss, logs = module.parse_losses(losses)
                optim_wrapper.backward(optim_wrapper.scale_loss(loss))
            if k < len(parts) - 1:
                optim_wrapper._inner_count -= 1  # the parts are one iteration's backward
            log_vars.update(logs, loss=log_vars.get('loss', 0) + logs['loss'])
        if optim_wrapper.should_update():
            if distributed:
                _average_gradients(module)
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        return log_vars

    def check_batch_norms_are_per_dataset(self) -> None:
        """mode='accumulate' forwards one dataset at a time: the same update as 'sum' only if
        no BatchNorm normalises with statistics shared by the datasets."""
        model = self.runner.model.module if is_model_wrapper(self.runner.model) else \
            self.runner.model
        model.train()
        branches = {id(bn) for m in model.modules() if isinstance(m, DSBN) for bn in m.bns}
        shared = [name for name, m in model.named_modules() if isinstance(m, _BatchNorm)
                  and id(m) not in branches and (m.training or not m.track_running_stats)]
        if shared:
            raise ValueError(
                "DATTrainLoop(mode='accumulate') forwards one dataset at a time, which makes "
                "mode='sum''s update only when every BatchNorm is dataset-specific (DSBN); "
                f'{len(shared)} BatchNorm layers are shared by the datasets (e.g. '
                f"{', '.join(shared[:3])}): use mode='sum'")

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
            if not (isinstance(module, DatasetAwareModule) or is_dataset_aware(module)) \
                    or names is None:
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
        if hasattr(model, 'set_dataset_classes'):
            # Its checkpoints then state the class names (label spaces by class name use them).
            model.set_dataset_classes({name: meta.get('classes') for name, meta in
                                       dataset.metainfo['datasets'].items()})


def _average_gradients(module: torch.nn.Module) -> None:
    """Average the gradients over the processes, as DDP does. Parameters without a gradient
    (branches of datasets absent from the update) must be the same in every process."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.int32,
                            device=params[0].device)
    all_reduce(has_grad)
    world_size = get_world_size()
    if not torch.all((has_grad == 0) | (has_grad == world_size)):
        names = [n for (n, p), c in zip(module.named_parameters(), has_grad.tolist())
                 if p.requires_grad and 0 < c < world_size]
        raise RuntimeError(f'DATTrainLoop: {len(names)} parameters have gradients in some '
                           f'processes only (e.g. {names[:3]}): every process must draw '
                           'samples of the same datasets in an iteration')
    all_reduce_params([p.grad for p in params if p.grad is not None], op='mean')
