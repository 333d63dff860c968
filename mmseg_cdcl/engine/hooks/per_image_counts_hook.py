"""Each test image's per-class intersection and union, for paired comparisons of models."""

from mmengine.hooks import Hook
from mmseg.evaluation import IoUMetric
from mmseg.registry import HOOKS


@HOOKS.register_module()
class PerImageCountsHook(Hook):
    """Records each test image's per-class intersection and union, in its dataset's own label
    space (as ``MultiDatasetIoUMetric`` counts them), for the paired bootstrap of
    :mod:`mmseg_cdcl.evaluation.model_comparison`: ``counts[dataset][img_path] = (i, u)``.

    Example:
        >>> hook = PerImageCountsHook()
        >>> runner.register_hook(hook)
        >>> runner.test()
        >>> hook.counts['cityscapes']  # {img_path: (intersection, union)}
    """

    def __init__(self):
        self.counts = {}

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        meta = runner.test_dataloader.dataset.metainfo
        for sample in outputs:
            name = meta['dataset_names'][sample.dataset_idx]
            space = meta['datasets'][name]
            pred = sample.pred_sem_seg.data.squeeze()
            intersect, union, _, _ = IoUMetric.intersect_and_union(
                pred,
                sample.gt_sem_seg.data.squeeze().to(pred),
                len(space['classes']),
                space['ignore_index'],
            )
            self.counts.setdefault(name, {})[sample.img_path] = (intersect.numpy(), union.numpy())
