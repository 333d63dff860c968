"""Dataset Alternation Training (DAT): one batch of every dataset, one step on their sum."""

from contextlib import nullcontext
from typing import List, Sequence, Tuple

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import LOOPS
from torch.nn.modules.batchnorm import _BatchNorm

from ...datasets.samplers import MultiDatasetSampler
from ...models.layers import DSBN, DatasetRouting
from ...utils.mmengine_internals import infinite_dataloader_iterator, uncount_backward
from ..hooks import ResumeHook, RNGStateHook
from .dataset_agreement import aware_modules_of, check_datasets_agree
from .gradient_averaging import average_gradients


def split_by_dataset(data_batch: dict) -> List[Tuple[int, dict]]:
    """The batch's samples of each dataset, as ``(dataset index, batch)`` pairs."""
    samples = data_batch['data_samples']
    routing = DatasetRouting.build([s.metainfo['dataset_idx'] for s in samples])
    return [
        (d, {key: [value[i] for i in rows] for key, value in data_batch.items()})
        for d, rows in zip(routing.datasets, routing.positions(len(samples)))
    ]


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
    branches, classes per classifier). The sampler's seed, batch sizes, intervals and number of
    processes go into every checkpoint: a resumed run continues with the batches an
    uninterrupted run would draw (refusing another number of processes) without loading the
    skipped ones. It adds, when the config has none, ``RNGStateHook`` (restores the random
    states) and ``ResumeHook`` (a fresh run does not start over an earlier run's checkpoints;
    ``--resume`` survives a truncated ``last_checkpoint``). Each
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
        # What a resume that repeats the run needs, also for configs that name none of it.
        for hook_type in (RNGStateHook, ResumeHook):
            if not any(isinstance(hook, hook_type) for hook in runner.hooks):
                runner.register_hook(hook_type())

    def run(self):
        sampler = self.dataloader.batch_sampler
        check_datasets_agree(self.dataloader.dataset, sampler, self.runner.model)
        if self.mode == 'accumulate':
            self.check_batch_norms_are_per_dataset()
        if self._iter > 0:
            self.continue_sampler(sampler)
            sampler.set_step(self._iter)
            self.dataloader_iterator = _Resumed(
                self._iter, infinite_dataloader_iterator(self.dataloader)
            )
        self.runner.message_hub.update_info('dat_sampler', sampler.state())
        return super().run()

    def continue_sampler(self, sampler: MultiDatasetSampler) -> None:
        """Draw the interrupted run's batches: its seed, after checking that batch sizes,
        intervals and the number of processes are its own."""
        saved = self.runner.message_hub.get_info('dat_sampler')
        if saved is None:  # a checkpoint of mmseg-cdcl 0.1
            print_log(
                "DATTrainLoop: the checkpoint does not hold the sampler's state; the "
                'resumed batches repeat the interrupted run only with randomness.seed '
                'set as it was',
                logger='current',
                level=30,
            )
            return
        now = sampler.state()
        if saved['world_size'] != now['world_size']:
            raise ValueError(
                f'DATTrainLoop: the checkpoint was written by a run of {saved["world_size"]} '
                f'process(es) and this run has {now["world_size"]}: each process draws its own '
                'batch of every dataset, so the resumed batches would repeat samples and change '
                'the batch size. Resume with the same number of processes, or start a new run '
                'from the checkpoint with load_from'
            )
        for key in ('batch_sizes', 'intervals'):
            if saved[key] != now[key]:
                raise ValueError(
                    f"DATTrainLoop: the checkpoint's run drew {key}="
                    f"{saved[key]} and this run's sampler has {now[key]}: resume "
                    'with the same, or start a new run with load_from'
                )
        sampler.set_seed(saved['seed'])

    def run_iter(self, data_batch: dict) -> None:
        self.runner.call_hook('before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        outputs = self._train_step(data_batch)
        self.runner.call_hook(
            'after_train_iter', batch_idx=self._iter, data_batch=data_batch, outputs=outputs
        )
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
            logs = (
                self._update(model, optim_wrapper, [part])
                if distributed
                else model.train_step(part, optim_wrapper=optim_wrapper)
            )
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
                    losses = model(**data, mode='loss')
                loss, logs = module.parse_losses(losses)
                optim_wrapper.backward(optim_wrapper.scale_loss(loss))
            if k < len(parts) - 1:
                uncount_backward(optim_wrapper)  # the parts are one iteration's backward
            log_vars.update(logs, loss=log_vars.get('loss', 0) + logs['loss'])
        if optim_wrapper.should_update():
            if distributed:
                average_gradients(module)
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        return log_vars

    def check_batch_norms_are_per_dataset(self) -> None:
        """mode='accumulate' forwards one dataset at a time: the same update as 'sum' only if
        no BatchNorm normalises with statistics shared by the datasets."""
        model = (
            self.runner.model.module if is_model_wrapper(self.runner.model) else self.runner.model
        )
        model.train()
        branches = {id(bn) for m in aware_modules_of(model) if isinstance(m, DSBN) for bn in m.bns}
        shared = [
            name
            for name, m in model.named_modules()
            if isinstance(m, _BatchNorm)
            and id(m) not in branches
            and (m.training or not m.track_running_stats)
        ]
        if shared:
            raise ValueError(
                "DATTrainLoop(mode='accumulate') forwards one dataset at a time, which makes "
                "mode='sum''s update only when every BatchNorm is dataset-specific (DSBN); "
                f'{len(shared)} BatchNorm layers are shared by the datasets (e.g. '
                f"{', '.join(shared[:3])}): use mode='sum'"
            )
