"""Each dataset's test pipeline on one image, for a CDCL model that is told its dataset or
chooses it (``default_dataset``) only when it predicts."""

import copy
from typing import Dict, List, Optional

from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.dataset import Compose
from mmseg.registry import TRANSFORMS

# Transforms a loaded image of inference skips: it is loaded once, and it has no labels.
LOADING = ('LoadImageFromFile', 'LoadImageFromNDArray', 'InferencerLoader', 'LoadAnnotations')


def multi_dataset_config(
    cfg: Config, dataset: str, loaders=('test_dataloader', 'val_dataloader')
) -> Optional[dict]:
    """The config of ``dataset`` in the first of ``loaders`` whose MultiDataset lists it."""
    for loader in loaders:
        datasets = (cfg.get(loader) or {}).get('dataset', {}).get('datasets', {})
        if dataset in datasets:
            return datasets[dataset]
    return None


def multi_dataset_pipeline(cfg: Config, dataset: str) -> Optional[list]:
    """The test pipeline of ``dataset`` in the config's test (else val) MultiDataset, else in
    its ``dataset_test_pipelines`` (datasets without labels, e.g. a branch added from a new
    camera's images by ``add_dataset_branch``)."""
    pipeline = (multi_dataset_config(cfg, dataset) or {}).get('pipeline')
    return (
        pipeline if pipeline is not None else (cfg.get('dataset_test_pipelines') or {}).get(dataset)
    )


def dataset_test_pipeline(cfg: Config, dataset: str) -> Optional[list]:
    """The test pipeline of ``dataset`` in the config's test (else val) MultiDataset, else the
    config's top-level ``test_pipeline``."""
    pipeline = multi_dataset_pipeline(cfg, dataset)
    return cfg.get('test_pipeline') if pipeline is None else pipeline


def inference_pipeline(cfg: Config, dataset_names: List[str]) -> Optional[list]:
    """The ``test_pipeline`` that ``mmseg.apis.inference_model`` runs on images for a CDCL
    model: the image loaded as the first dataset's pipeline loads it, then every dataset's
    test pipeline (:class:`DatasetTestPipelines`); None unless the config's test or val
    MultiDataset gives every dataset a pipeline."""
    pipelines = {name: multi_dataset_pipeline(cfg, name) for name in dataset_names}
    if any(p is None for p in pipelines.values()):
        return None
    load = next(
        (t for t in pipelines[dataset_names[0]] if t.get('type') in LOADING[:3]),
        dict(type='LoadImageFromFile'),
    )
    return [
        copy.deepcopy(load),
        dict(type='DatasetTestPipelines', pipelines=copy.deepcopy(pipelines)),
    ]


@TRANSFORMS.register_module()
class DatasetTestPipelines(BaseTransform):
    """Every dataset's test pipeline on one loaded image, for a CDCL model that is told the
    image's dataset, or chooses it, only when it predicts (``model.default_dataset``).

    The result is the first dataset's pipeline's, its data sample's metainfo holding
    ``pipeline_dataset`` (that dataset's name) and ``dataset_inputs``: the other datasets'
    ``dict(inputs=..., data_samples=...)`` by name. ``CDCLEncoderDecoder`` predicts an image with
    the inputs of the dataset whose branch predicts it, so an image routed to a dataset (named,
    or chosen by ``'auto'``) is predicted as that dataset's test pipeline and branch predict it.
    Loading transforms in the pipelines (``LoadImageFromFile``, ``LoadAnnotations``, ...) are
    skipped: the image is loaded once, before this transform, and has no labels.

    Example:
        >>> test_pipeline = [
        ...     dict(type='LoadImageFromFile'),
        ...     dict(type='DatasetTestPipelines', pipelines=dict(
        ...         cityscapes=cityscapes_test_pipeline, bdd100k=bdd100k_test_pipeline))]

    Args:
        pipelines (dict[str, list]): Each dataset's test pipeline by name, in the model's
            dataset order.
    """

    def __init__(self, pipelines: Dict[str, list]):
        if not isinstance(pipelines, dict) or not pipelines:
            raise TypeError(
                'DatasetTestPipelines.pipelines must be a non-empty dict of test '
                f'pipelines by dataset name, got {type(pipelines).__name__}'
            )
        self.pipelines = {
            name: Compose([t for t in pipeline if t.get('type') not in LOADING])
            for name, pipeline in pipelines.items()
        }

    def transform(self, results: dict) -> dict:
        names = list(self.pipelines)
        outputs = {name: self.pipelines[name](copy.deepcopy(results)) for name in names}
        first = outputs[names[0]]
        first['data_samples'].set_metainfo(
            dict(
                pipeline_dataset=names[0],
                dataset_inputs={
                    name: dict(inputs=out['inputs'], data_samples=out['data_samples'])
                    for name, out in outputs.items()
                    if name != names[0]
                },
            )
        )
        return first

    def __repr__(self) -> str:
        return f'{type(self).__name__}(pipelines={self.pipelines})'
