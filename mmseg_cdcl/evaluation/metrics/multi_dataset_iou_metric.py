"""mIoU of each dataset, in its own label space, from one evaluation over a MultiDataset."""
from typing import Dict, Sequence

import numpy as np
from mmengine.logging import print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class MultiDatasetIoUMetric(IoUMetric):
    """MMSeg's IoUMetric per dataset of a ``MultiDataset``.

    Each sample is scored against its own dataset's classes and ignore index (from the data
    sample's ``dataset_idx``). Returns ``<dataset>/aAcc``, ``<dataset>/mIoU``,
    ``<dataset>/mAcc`` (and any other ``iou_metrics``), logs each dataset's per-class table, and
    the mean over datasets as ``aAcc``, ``mIoU``, ``mAcc``, so ``save_best='mIoU'`` works.

    Example:
        >>> val_evaluator = dict(type='MultiDatasetIoUMetric', iou_metrics=['mIoU'])

    Args:
        **kwargs: Arguments of :class:`mmseg.evaluation.IoUMetric`; its ``ignore_index`` is the
            default for datasets whose metainfo has none.
    """

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        names, metas = self.dataset_meta['dataset_names'], self.dataset_meta['datasets']
        for sample in data_samples:
            d = sample['dataset_idx']
            meta = metas[names[d]]
            pred = sample['pred_sem_seg']['data'].squeeze()
            label = sample['gt_sem_seg']['data'].squeeze().to(pred)
            self.results.append((d, *self.intersect_and_union(
                pred, label, len(meta['classes']), meta.get('ignore_index', self.ignore_index))))

    def compute_metrics(self, results: list) -> Dict[str, float]:
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
