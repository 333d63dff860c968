"""mIoU of each dataset, in the label space of its predictions, from one evaluation over a
MultiDataset."""

import os.path as osp
from typing import Dict, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from ...structures.prediction_space import (
    IGNORE,
    describe,
    labels_in_space,
    resolve_space,
    uncomparable,
)


@METRICS.register_module()
class MultiDatasetIoUMetric(IoUMetric):
    """MMSeg's IoUMetric per dataset of a ``MultiDataset``.

    Each sample is scored in the space its prediction states (``prediction_space``, see
    :mod:`mmseg_cdcl.structures.prediction_space`): its own dataset's classes and ignore index
    (from the data sample's ``dataset_idx``), or the model's ``label_space``, into which the
    dataset's labels are mapped (the log names the space; ``model.test_cfg.output_space=
    'dataset'`` evaluates such a model in each dataset's classes). Ids of two spaces are never
    compared: a prediction in a space the dataset's labels cannot be mapped into is refused.
    Returns ``<dataset>/aAcc``, ``<dataset>/mIoU``,
    ``<dataset>/mAcc`` (and any other ``iou_metrics``), logs each dataset's per-class table, and
    the mean over datasets as ``aAcc``, ``mIoU``, ``mAcc``, so ``save_best='mIoU'`` works.

    With ``output_dir``, each prediction is written as IoUMetric writes it (a PNG of class
    ids of its space, +1 under ``reduce_zero_label``) to
    ``output_dir/<dataset>/<image name>.png``. With
    ``format_only`` too, nothing is scored (test sets without labels) and it returns ``{}``.

    Example:
        >>> val_evaluator = dict(type='MultiDatasetIoUMetric', iou_metrics=['mIoU'])
        >>> test_evaluator = dict(type='MultiDatasetIoUMetric', format_only=True,
        ...                       output_dir='work_dirs/format_results')

    Args:
        **kwargs: Arguments of :class:`mmseg.evaluation.IoUMetric`; its ``ignore_index`` is the
            default for datasets whose metainfo has none.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.format_only and self.output_dir is None:
            raise ValueError(
                'MultiDatasetIoUMetric: format_only=True scores nothing and writes '
                'the predictions to output_dir, which is not set'
            )

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """IoUMetric's ``process`` on each sample in the space of its prediction (its dataset's
        labels mapped there) and in its dataset's folder; each result is tagged with the
        sample's dataset index and the space."""
        names, metas = self.dataset_meta['dataset_names'], self.dataset_meta['datasets']
        own = self._dataset_meta, self.ignore_index, self.output_dir
        try:
            for sample in data_samples:
                d = sample['dataset_idx']
                meta = metas[names[d]]
                if sample.get('dataset_name') is None:  # tagged by index only
                    sample = dict(sample, dataset_name=names[d])
                space = resolve_space(sample, own[0])
                self._dataset_meta = dict(meta, classes=space['classes'], palette=space['palette'])
                self.ignore_index = meta.get('ignore_index', own[1])
                if space['name'] != names[d] and not self.format_only:
                    label = labels_in_space(sample, sample['gt_sem_seg']['data'], space, own[0])
                    if label is None:
                        raise ValueError(
                            'MultiDatasetIoUMetric: ' + uncomparable(sample, space, own[0])
                        )
                    sample = dict(sample, gt_sem_seg=dict(data=label))
                    self.ignore_index = IGNORE
                if own[2] is not None:
                    self.output_dir = osp.join(own[2], names[d])
                    if is_main_process():
                        mkdir_or_exist(self.output_dir)
                before = len(self.results)
                super().process(data_batch, [sample])
                if len(self.results) > before:  # nothing under format_only
                    self.results[-1] = (d, space, *self.results[-1])
        finally:
            self._dataset_meta, self.ignore_index, self.output_dir = own

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if self.format_only:
            print_log(f'predictions written to {self.output_dir}/<dataset>/', logger='current')
            return {}
        names, metas = self.dataset_meta['dataset_names'], self.dataset_meta['datasets']
        metrics, per_dataset = {}, []
        own_meta = self._dataset_meta
        try:
            for d, name in enumerate(names):
                mine = [r[2:] for r in results if r[0] == d]
                if not mine:
                    continue
                spaces = {
                    (s['name'], s['classes']): s for r in results if r[0] == d for s in [r[1]]
                }
                if len(spaces) > 1:
                    raise ValueError(
                        f"MultiDatasetIoUMetric: the predictions of dataset '{name}' are in "
                        f'{len(spaces)} label spaces ('
                        + '; '.join(describe(s) for s in spaces.values())
                        + '), whose class ids cannot be scored together'
                    )
                [space] = spaces.values()
                where = '' if space['name'] == name else f', in {describe(space)}'
                print_log(f'{name}: {len(mine)} images{where}', logger='current')
                # the base class reads the classes from it
                self._dataset_meta = dict(metas[name], classes=space['classes'])
                scores = super().compute_metrics(mine)
                per_dataset.append(scores)
                metrics.update({f'{name}/{k}': v for k, v in scores.items()})
        finally:
            self._dataset_meta = own_meta
        for key in per_dataset[0] if per_dataset else ():
            metrics[key] = float(np.round(np.mean([s[key] for s in per_dataset]), 2))
        return metrics
