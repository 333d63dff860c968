"""The checkpoints mmengine's Runner loads, read by dataset name as ``load_cdcl_checkpoint``
reads them."""

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ...models.utils.checkpoint_datasets import state_datasets_from_meta, stated
from ...utils.mmengine_internals import resume_arguments


@HOOKS.register_module()
class CheckpointDatasetsHook(Hook):
    """Reads the datasets of the checkpoint the Runner loads (``load_from``, ``--resume``,
    ``tools/test.py``) from the whole checkpoint, before its state dict is loaded:

    - a state dict whose datasets contradict the checkpoint's training config (``meta.cfg``) is
      refused, naming both;
    - a checkpoint written before state dicts stated their datasets states those of its
      ``meta.dataset_meta``, so that its branches load by name (not by position);
    - a resume continues the same run: the model's ``dataset_names`` must be the checkpoint's,
      in its order (the optimizer's state is per parameter position).

    Without it, a checkpoint that states its datasets still loads by name (the model's state
    dict hook); it adds what only the whole checkpoint tells. See
    :func:`mmseg_cdcl.models.utils.checkpoint_datasets.state_datasets_from_meta`.

    Example:
        >>> custom_hooks = [dict(type='CheckpointDatasetsHook')]
    """

    priority = 'VERY_HIGH'  # before EMAHook copies the state dict into its averaged model

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        resume, load_from = resume_arguments(runner)
        filename = load_from or f'the latest checkpoint of {runner.work_dir}'
        state_datasets_from_meta(checkpoint, filename)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        statement = stated(checkpoint.get('state_dict', checkpoint))
        if not resume or statement is None or not hasattr(model, 'dataset_names'):
            return
        names = list(model.dataset_names)
        if names != list(statement['dataset_names']):
            raise ValueError(
                f"resuming {filename}: the model's dataset_names {names} are not the "
                f"checkpoint's {list(statement['dataset_names'])}: a resume continues the "
                "same run (the optimizer's state is per parameter position); start a run "
                'from it with load_from instead'
            )
