"""MMSeg's inference API on one dataset's branch of a CDCL model."""
import copy
from typing import Optional, Union

from mmengine.config import Config
from mmseg.apis import init_model
from mmseg.registry import DATASETS


def dataset_test_pipeline(cfg: Config, dataset: str) -> Optional[list]:
    """The test pipeline of ``dataset`` in the config's test (else val) MultiDataset, else the
    config's top-level ``test_pipeline``."""
    for loader in ('test_dataloader', 'val_dataloader'):
        datasets = (cfg.get(loader) or {}).get('dataset', {}).get('datasets', {})
        if dataset in datasets and 'pipeline' in datasets[dataset]:
            return datasets[dataset]['pipeline']
    return cfg.get('test_pipeline')


def dataset_metainfo(cfg: Config, dataset: str) -> Optional[dict]:
    """``dataset``'s metainfo (``classes``, ``palette``, ``ignore_index``) as the config's test
    (else val, else train) MultiDataset would hold it; None if none lists ``dataset``. Reads
    no data: the dataset is built without loading its annotations."""
    for loader in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        datasets = (cfg.get(loader) or {}).get('dataset', {}).get('datasets', {})
        if dataset in datasets:
            built = DATASETS.build(dict(datasets[dataset], lazy_init=True, pipeline=[]))
            return dict(built.metainfo, ignore_index=getattr(built, 'ignore_index', 255))
    return None


def init_cdcl_model(config: Union[str, Config], checkpoint: Optional[str], dataset: str,
                    device: str = 'cpu'):
    """``mmseg.apis.init_model`` routed to ``dataset``: ``inference_model`` on the result
    predicts with that dataset's branch and test pipeline, and ``model.dataset_meta`` is that
    dataset's ``classes``, ``palette`` and ``ignore_index`` (what ``show_result_pyplot``
    draws with): the checkpoint's ``meta.dataset_meta.datasets[dataset]`` (the training
    MultiDataset's), else as the config's dataloaders define ``dataset``. ``config`` is left
    as it is.

    Raises:
        ValueError: ``dataset`` is not one of the config's ``model.dataset_names``, or neither
            the checkpoint nor the config describes its classes.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    names = list(cfg.model.get('dataset_names', []))
    if dataset not in names:
        raise ValueError(f"unknown dataset '{dataset}': the model's datasets are {names}")
    cfg.model.default_dataset = dataset  # images given to inference_model carry no dataset
    pipeline = dataset_test_pipeline(cfg, dataset)
    if pipeline is not None:
        cfg.test_pipeline = pipeline
    model = init_model(cfg, checkpoint, device=device)
    # init_model sets the checkpoint's dataset_meta: a MultiDataset's holds each dataset's.
    meta = (getattr(model, 'dataset_meta', None) or {}).get('datasets', {}).get(dataset)
    meta = meta or dataset_metainfo(cfg, dataset)
    if meta is None:
        raise ValueError(
            f"no classes for dataset '{dataset}': the checkpoint's meta has no "
            f"dataset_meta.datasets.{dataset} and no test/val/train_dataloader of the config "
            f"lists '{dataset}' under dataset.datasets")
    model.dataset_meta = meta
    return model
