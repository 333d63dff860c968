"""The training dataset, its sampler and the model agree on the datasets."""

from typing import List, Tuple

from mmengine.model import is_model_wrapper
from torch import nn

from ...datasets.samplers import MultiDatasetSampler
from ...models.decode_heads import is_dataset_aware
from ...models.layers import DatasetAwareModule, dataset_aware_modules


def check_datasets_agree(dataset, sampler, model: nn.Module) -> None:
    """Raise, listing every disagreement, unless the training dataset, the sampler and the
    model have the same datasets (names), branches and classes per classifier; then state the
    datasets' class names in the model (its checkpoints then hold them, and label spaces by
    class name use them).

    Args:
        dataset (MultiDataset): The training dataset.
        sampler (MultiDatasetSampler): Its batch sampler.
        model (nn.Module): The model, wrapped or not.

    Raises:
        ValueError: ``DATTrainLoop: the datasets, sampler and model disagree:`` and a line per
            disagreement.
    """
    model = model.module if is_model_wrapper(model) else model
    names = getattr(dataset, 'dataset_names', None)
    problems = []
    if names is None:
        problems.append(f'the training dataset is a {type(dataset).__name__}, not a MultiDataset')
    if not isinstance(sampler, MultiDatasetSampler):
        problems.append(
            f'train_dataloader.batch_sampler is a {type(sampler).__name__}, '
            'not a MultiDatasetSampler'
        )
    elif names is not None and set(sampler.dataset_names) != set(names):
        problems.append(
            f'the sampler has datasets {sampler.dataset_names}, the training dataset {names}'
        )
    model_names = list(getattr(model, 'dataset_names', []))
    if names is not None and set(model_names) != set(names):
        problems.append(f'model.dataset_names={model_names} but the training dataset has {names}')
        names = None  # nothing more to compare
    for module_name, module in _branched_modules(model) if names is not None else ():
        if module.num_datasets != len(names):
            problems.append(
                f'{module_name} ({type(module).__name__}) has num_datasets='
                f'{module.num_datasets}, the training dataset {len(names)}'
            )
            continue
        # The model routes by name: its d-th classifier serves its d-th dataset name.
        for d, num_classes in enumerate(getattr(module, 'dataset_num_classes', ())):
            classes = dataset.metainfo['datasets'][model_names[d]].get('classes') or ()
            if len(classes) != num_classes:
                problems.append(
                    f'{module_name}.num_classes[{d}]={num_classes} but dataset '
                    f"'{model_names[d]}' has {len(classes)} classes"
                )
    if problems:
        raise ValueError(
            'DATTrainLoop: the datasets, sampler and model disagree:\n  - '
            + '\n  - '.join(problems)
        )
    if hasattr(model, 'set_dataset_classes'):
        datasets = dataset.metainfo['datasets']
        model.set_dataset_classes(
            {name: meta.get('classes') for name, meta in datasets.items()},
            {name: meta.get('palette') for name, meta in datasets.items()},
        )


def aware_modules_of(model: nn.Module) -> List[DatasetAwareModule]:
    """The model's dataset-aware modules (DSBN, classifiers), as a ``CDCLEncoderDecoder``
    lists them, and those of any other model."""
    if hasattr(model, 'aware_modules'):
        return model.aware_modules()
    return [module for _, module in dataset_aware_modules(model)]


def _branched_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` of the model's dataset-aware modules and of its heads with classes per
    dataset, in the model's order (the walk only names them, for the messages)."""
    heads = model.heads() if hasattr(model, 'heads') else []
    branched = {id(m) for m in aware_modules_of(model)}
    branched.update(id(head) for head in heads if is_dataset_aware(head))
    return [(name, m) for name, m in model.named_modules() if id(m) in branched]
