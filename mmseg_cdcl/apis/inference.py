"""MMSeg's inference API on one dataset's branch of a CDCL model."""

import copy
from typing import Optional, Union

from mmengine.config import Config
from mmseg.apis import init_model
from mmseg.registry import DATASETS

from ..datasets.transforms.dataset_test_pipelines import dataset_test_pipeline, multi_dataset_config
from ..structures.prediction_space import predicts_in_label_space
from .checkpoint import load_cdcl_checkpoint


def dataset_metainfo(cfg: Config, dataset: str) -> Optional[dict]:
    """``dataset``'s metainfo (``classes``, ``palette``, ``ignore_index``) as the config's test
    (else val, else train) MultiDataset would hold it; None if none lists ``dataset``. Reads
    no data: the dataset is built without loading its annotations."""
    config = multi_dataset_config(
        cfg, dataset, ('test_dataloader', 'val_dataloader', 'train_dataloader')
    )
    if config is None:
        return None
    built = DATASETS.build(dict(config, lazy_init=True, pipeline=[]))
    return dict(built.metainfo, ignore_index=getattr(built, 'ignore_index', 255))


def init_cdcl_model(
    config: Union[str, Config], checkpoint: Optional[str], dataset: str, device: str = 'cpu'
):
    """``mmseg.apis.init_model`` routed to ``dataset``: ``inference_model`` on the result
    predicts with that dataset's branch and test pipeline, and ``model.dataset_meta`` is that
    dataset's ``classes``, ``palette`` and ``ignore_index`` (what ``show_result_pyplot``
    draws with): the checkpoint's ``meta.dataset_meta.datasets[dataset]`` (the training
    MultiDataset's), else as the config's dataloaders define ``dataset``. ``config`` is left
    as it is.

    ``dataset='auto'`` predicts each image with the branch whose DSBN statistics its features
    match best, ``dataset='ensemble'`` with all branches combined; each result's metainfo holds
    ``dataset_name`` (the chosen branch) and ``dataset_scores`` (a score per dataset). An image
    is predicted with the test pipeline of the dataset whose branch predicts it (auto's choice
    is made on the first dataset's; ensemble predicts on the first dataset's), named in its
    metainfo ``pipeline_dataset`` (see ``DatasetTestPipelines``). With the config's
    ``model.label_space``, every prediction is in its classes, and ``dataset_meta`` is its
    (unless ``model.test_cfg.output_space='dataset'``). Every result states the space of its
    classes in its metainfo ``prediction_space``; ``model.dataset_meta``'s ``classes`` and
    ``palette`` (what MMSeg's ``show_result_pyplot`` draws with) are those of the one space
    of all results, and refuse to be used where there is none (``'auto'`` among datasets of
    other classes without a label space: draw with ``CDCLSegLocalVisualizer`` or
    ``tools/infer.py``, which read each result's space).

    Raises:
        ValueError: ``dataset`` is none of the config's ``model.dataset_names``, ``'auto'`` or
            ``'ensemble'``, or neither the checkpoint nor the config describes its classes.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    names = list(cfg.model.get('dataset_names', []))
    choose = dataset in ('auto', 'ensemble')
    if dataset not in names and not choose:
        raise ValueError(
            f"unknown dataset '{dataset}': the model's datasets are {names}, or "
            "'auto' or 'ensemble' for images of unknown source"
        )
    cfg.model.default_dataset = dataset  # images given to inference_model carry no dataset
    pipeline = dataset_test_pipeline(cfg, names[0] if choose else dataset)
    if pipeline is not None:
        cfg.test_pipeline = pipeline
    model = init_model(cfg, None, device=device)
    if checkpoint is not None:
        # Not init_model's loading: a checkpoint that states its datasets only in its meta
        # (written before its state dict did) loads by dataset name too.
        meta = load_cdcl_checkpoint(model, checkpoint).get('meta') or {}
        if 'dataset_meta' in meta:
            model.dataset_meta = meta['dataset_meta']
    # Mappings by class name need each dataset's classes: the checkpoint's, else the config's.
    model.set_dataset_classes(
        {
            name: meta['classes']
            for name in names
            if name not in model.dataset_classes
            and (meta := dataset_metainfo(cfg, name)) is not None
        }
    )
    if model.label_space is not None and predicts_in_label_space(model):
        model.dataset_meta = model.label_space.meta()
        return model
    # init_model sets the checkpoint's dataset_meta: a MultiDataset's holds each dataset's.
    datasets = (getattr(model, 'dataset_meta', None) or {}).get('datasets', {})
    metas = {}
    for name in names if choose else [dataset]:
        metas[name] = datasets.get(name) or dataset_metainfo(cfg, name)
        if metas[name] is None:
            raise ValueError(
                f"no classes for dataset '{name}': the checkpoint's meta has no "
                f'dataset_meta.datasets.{name} and no test/val/train_dataloader of the config '
                f"lists '{name}' under dataset.datasets"
            )
    # Images of unknown source: each result states its space (the chosen dataset's classes);
    # the classes and palette MMSeg's visualizer reads are the one space of all results, if any
    # (the model's dataset_meta, structures/prediction_space.py).
    model.dataset_meta = (
        dict(metas[names[0]], dataset_names=names, datasets=metas) if choose else metas[dataset]
    )
    return model
