"""mIoU of each dataset, in its own label space, from one evaluation over a MultiDataset."""

import os.path as osp
from typing import Dict, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class MultiDatasetIoUMetric(IoUMetric):
    """MMSeg's IoUMetric per dataset of a ``MultiDataset``.

    Each sample is scored against its own dataset's classes and ignore index (from the data
    sample's ``dataset_idx``). Returns ``<dataset>/aAcc``, ``<dataset>/mIoU``,
    ``<dataset>/mAcc`` (and any other ``iou_metrics``), logs each dataset's per-class table, and
    the mean over datasets as ``aAcc``, ``mIoU``, ``mAcc``, so ``save_best='mIoU'`` works.

    With ``output_dir``, each prediction is written as IoUMetric writes it (a PNG of class
    ids, +1 under ``reduce_zero_label``) to ``output_dir/<dataset>/<image name>.png``. With
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
        """IoUMetric's ``process`` on each sample in its dataset's label space and folder;
        each result is tagged with the sample's dataset index."""
        names, metas = self.dataset_meta['dataset_names'], self.dataset_meta['datasets']
        own = self._dataset_meta, self.ignore_index, self.output_dir
        try:
            for sample in data_samples:
                d = sample['dataset_idx']
                meta = metas[names[d]]
                self._dataset_meta = meta
                self.ignore_index = meta.get('ignore_index', own[1])
                if own[2] is not None:
                    self.output_dir = osp.join(own[2], names[d])
                    if is_main_process():
                        mkdir_or_exist(self.output_dir)
                before = len(self.results)
                super().process(data_batch, [sample])
                if len(self.results) > before:  # nothing under format_only
                    self.results[-1] = (d, *self.results[-1])
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
                mine = [r[1:] for r in results if r[0] == d]
                if not mine:
                    continue
                print_log(f'{name}: {len(mine)} images', logger='current')
                self._dataset_meta = metas[name]  # the base class reads classes from it
                scores = super().compute_metrics(mine)
                per_dataset.append(scores)
                metrics.update({f'{name}/{k}': v for k, v in scores.items()})
        finally:
            self._dataset_meta = own_meta
        for key in per_dataset[0] if per_dataset else ():
            metrics[key] = float(np.round(np.mean([s[key] for s in per_dataset]), 2))
        return metrics
