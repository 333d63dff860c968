"""Test-time augmentation of a CDCL model: MMSeg's, with each image's dataset scores from all
its views."""

from typing import List

import torch
from mmseg.models import SegTTAModel
from mmseg.registry import MODELS
from mmseg.utils import SampleList

from ...structures.prediction_space import stated_space


@MODELS.register_module()
class CDCLTTAModel(SegTTAModel):
    """MMSeg's ``SegTTAModel`` (the probabilities of all views averaged) for a CDCL model.

    Each view of an image is predicted with the image's dataset branch, so per-dataset mIoU
    under ``tools/test.py --tta`` is scored as without it (each dataset's views come from its
    own ``tta_pipeline``). An image of unknown source (``default_dataset='auto'`` or
    ``'ensemble'``) has ``dataset_scores`` per view: the merged result's are their mean, and
    its ``dataset_name`` their argmax. ``test_cfg.unknown_source=True`` (every route of every
    image, for ``UnknownSourceMetric``) is refused: its routes are label maps, which views
    cannot be averaged from. The merged result keeps its views' ``prediction_space``; views
    predicted in different spaces (``'auto'`` choosing branches of datasets with other classes
    for an image's views) are refused.

    Example:
        >>> tta_model = dict(type='CDCLTTAModel')  # configs/_base_/cdcl_runtime.py
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if (getattr(self.module, 'test_cfg', None) or {}).get('unknown_source', False):
            raise ValueError(
                'test-time augmentation (tools/test.py --tta) of a model with '
                "test_cfg.unknown_source=True: each route's prediction is a label map, so the "
                'views of an image cannot be merged, and UnknownSourceMetric would score one '
                'view; test without --tta'
            )

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        for views in data_samples_list:
            spaces = {_key(stated_space(v)) for v in views}
            if len(spaces) > 1:
                raise ValueError(
                    'test-time augmentation: the views of '
                    f'{views[0].metainfo.get("img_path", "an image")} are predicted in '
                    f'{len(spaces)} label spaces ({sorted(str(s[0]) for s in spaces)}: '
                    "'auto' chose branches of datasets with other classes), whose "
                    'probabilities cannot be averaged: set model.label_space (one output label '
                    "space) or name the images' dataset"
                )
        merged = super().merge_preds(data_samples_list)
        for views, result in zip(data_samples_list, merged):
            scores = [v.metainfo['dataset_scores'] for v in views if 'dataset_scores' in v]
            if not scores:
                continue
            if len(scores) != len(views):
                raise ValueError(
                    'test-time augmentation: some views of an image have '
                    'dataset_scores and others not'
                )
            names = list(scores[0])
            mean = torch.tensor([[s[n] for n in names] for s in scores]).mean(0)
            result.set_metainfo(
                dict(
                    dataset_name=names[int(mean.argmax())],
                    dataset_scores={n: float(v) for n, v in zip(names, mean)},
                )
            )
        return merged


def _key(space):
    """A stated space, comparable."""
    return None if space is None else (space['name'], space.get('classes'))
