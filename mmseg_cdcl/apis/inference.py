"""MMSeg's inference API on one dataset's branch of a CDCL model."""
from typing import Optional, Union

from mmengine.config import Config
from mmseg.apis import init_model


def dataset_test_pipeline(cfg: Config, dataset: str) -> Optional[list]:
    """The test pipeline of ``dataset`` in the config's test (else val) MultiDataset, else the
    config's top-level ``test_pipeline``."""
    for loader in ('test_dataloader', 'val_dataloader'):
        datasets = (cfg.get(loader) or {}).get('dataset', {}).get('datasets', {})
        if dataset in datasets and 'pipeline' in datasets[dataset]:
            return datasets[dataset]['pipeline']
    return cfg.get('test_pipeline')


def init_cdcl_model(config: Union[str, Config], checkpoint: Optional[str], dataset: str,
                    device: str = 'cpu'):
    """``mmseg.apis.init_model`` routed to ``dataset``: ``inference_model`` on the result
    predicts with that dataset's branch, classes and test pipeline.

    Raises:
        ValueError: ``dataset`` is not one of the config's ``model.dataset_names``.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else config.copy()
    names = list(cfg.model.get('dataset_names', []))
    if dataset not in names:
        raise ValueError(f"unknown dataset '{dataset}': the model's datasets are {names}")
    cfg.model.default_dataset = dataset  # images given to inference_model carry no dataset
    pipeline = dataset_test_pipeline(cfg, dataset)
    if pipeline is not None:
        cfg.test_pipeline = pipeline
    return init_model(cfg, checkpoint, device=device)
