"""Evaluation as deployment sees it: a CDCL model that is not told where an image comes from."""

import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from PIL import Image

from ...models.utils import LabelSpace
from ...structures.prediction_space import stated_space


@METRICS.register_module()
class UnknownSourceMetric(BaseMetric):
    """mIoU of every route of a CDCL model on images of unknown source, per source dataset.

    The model runs with ``test_cfg.unknown_source=True``: for each image it predicts with
    every dataset branch (``branch_<dataset>``), the branch its DSBN statistics choose
    (``auto``), all branches combined (``ensemble``) and, where the image's dataset is one of
    the model's, that dataset's branch (``oracle``). The evaluation datasets (a
    ``MultiDataset``) may include datasets the model never trained on. Everything is scored in
    one label space: the model's ``label_space`` (pass the same dict here); a dataset without a
    mapping must have the target classes. Reports ``<dataset>/<route>/mIoU``, the branch-choice
    accuracy ``<dataset>/branch_accuracy`` (datasets of the model), the confusion matrix
    ``choice/<dataset>/<branch>`` (images), and ``mIoU``, auto's mean over the datasets. A
    dataset labelled in the label space's own classes is scored as it is (a universal model's
    CamVid images labelled in the universal classes); one whose class is a union of target
    classes (a universal space's coarser labels) is refused by name: no truth in the targets.

    Example:
        >>> model = dict(label_space=label_space, test_cfg=dict(unknown_source=True))
        >>> test_evaluator = dict(type='UnknownSourceMetric', label_space=label_space)

    Args:
        label_space (dict, optional): ``classes``, ``mapping`` (and ``palette``) as the model's.
            Defaults to None: every dataset has the first dataset's classes.
        output_dir (str, optional): Where to write auto's prediction of each image, as a PNG
            of class ids of the label space: ``output_dir/<dataset>/<image name>.png``
            (``tools/test.py --out`` sets it). Defaults to None.
        keep_results (bool): Accepted as ``IoUMetric``'s (``tools/test.py --out`` sets it);
            the files are always kept.
    """

    default_prefix = None

    def __init__(
        self,
        label_space: Optional[dict] = None,
        output_dir: Optional[str] = None,
        keep_results: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.label_space_cfg = label_space
        self.output_dir = output_dir
        self._space: Optional[LabelSpace] = None

    def _label_space(self) -> LabelSpace:
        if self._space is None:
            names = self.dataset_meta['dataset_names']
            classes = {n: self.dataset_meta['datasets'][n]['classes'] for n in names}
            cfg = dict(self.label_space_cfg or dict(classes=classes[names[0]], mapping={}))
            cfg.pop('dataset_classes', None)
            # Labels in the space's own classes are in it, whatever the model's branch of that
            # name predicts (a universal model's CamVid labelled in the universal classes).
            cfg['mapping'] = {
                n: m
                for n, m in (cfg.get('mapping') or {}).items()
                if tuple(classes.get(n) or ()) != tuple(cfg['classes'])
            }
            self._space = LabelSpace(
                dataset_names=names,
                num_classes=[len(classes[n]) for n in names],
                dataset_classes=classes,
                # A class stated as a union of target classes: a universal model's space, whose
                # labels of that class have no one target class (refused by name at scoring).
                universal=any(
                    isinstance(t, (list, tuple)) and len(t) > 1
                    for m in cfg['mapping'].values()
                    for t in (m.values() if isinstance(m, dict) else m or ())
                ),
                **cfg,
            )
        return self._space

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        space = self._label_space()
        names = self.dataset_meta['dataset_names']
        for sample in data_samples:
            if 'pred_auto' not in sample:
                raise KeyError(
                    'UnknownSourceMetric needs the predictions of every route: set '
                    "the model's test_cfg.unknown_source=True"
                )
            merged = sample.get('pred_sem_seg', {}).get('data')
            if merged is not None and not torch.equal(merged, sample['pred_auto']['data']):
                # The model predicts pred_sem_seg as auto: something merged predictions after it.
                raise ValueError(
                    "UnknownSourceMetric: the prediction (pred_sem_seg) is not auto's "
                    '(pred_auto), so it was changed after the model predicted the routes, e.g. '
                    'merged over the views of test-time augmentation, whose routes would be '
                    "the last view's; test without --tta"
                )
            stated = (stated_space(sample) or {}).get('classes')
            if stated is not None and tuple(stated) != tuple(space.classes):
                raise ValueError(
                    f'UnknownSourceMetric scores in the classes {list(space.classes)} (its '
                    f'label_space) but the model predicts in {list(stated)}: give the metric '
                    "the model's label_space"
                )
            source = sample['source_dataset']
            if self.output_dir is not None:
                self._write(sample['pred_auto']['data'], sample['img_path'], source)
            label = space.labels(sample['gt_sem_seg']['data'].squeeze(), names.index(source))
            areas = {}
            for key, value in sample.items():
                if key.startswith('pred_') and key != 'pred_sem_seg':
                    pred = value['data'].squeeze().to(label)
                    areas[key[len('pred_') :]] = [
                        a.cpu()
                        for a in IoUMetric.intersect_and_union(pred, label, len(space.classes), 255)
                    ]
            self.results.append((source, sample['dataset_name'], areas))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        sources = [n for n in self.dataset_meta['dataset_names'] if any(r[0] == n for r in results)]
        branches = sorted(
            {r[1] for r in results}
            | {k[len('branch_') :] for r in results for k in r[2] if k.startswith('branch_')}
        )
        routes = ['oracle', 'auto', 'ensemble'] + [f'branch_{b}' for b in branches]
        metrics, table = OrderedDict(), []
        for source in sources:
            mine = [r for r in results if r[0] == source]
            row = [source]
            for route in routes:
                areas = [r[2][route] for r in mine if route in r[2]]
                miou = self._miou(areas)
                if miou is not None:
                    metrics[f'{source}/{route}/mIoU'] = miou
                row.append('-' if miou is None else f'{miou:.2f}')
            chosen = [r[1] for r in mine]
            for branch in branches:
                metrics[f'choice/{source}/{branch}'] = chosen.count(branch)
            if source in branches:
                metrics[f'{source}/branch_accuracy'] = round(
                    100 * chosen.count(source) / len(chosen), 2
                )
            table.append(row + [' / '.join(str(chosen.count(b)) for b in branches)])
        metrics['mIoU'] = (
            float(np.round(np.mean([metrics[f'{s}/auto/mIoU'] for s in sources]), 2))
            if sources
            else 0.0
        )
        header = ['dataset'] + routes + [f'chosen: {" / ".join(branches)}']
        lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
        lines += ['| ' + ' | '.join(row) + ' |' for row in table]
        print_log(
            f'mIoU (%) in the classes {list(self._label_space().classes)} of images of '
            'unknown source, by route:\n' + '\n'.join(lines),
            logger='current',
        )
        if self.output_dir is not None:
            print_log(
                f"auto's predictions written to {self.output_dir}/<dataset>/, class ids of "
                f'{list(self._label_space().classes)}',
                logger='current',
            )
        return metrics

    def _write(self, prediction: torch.Tensor, img_path: str, dataset: str) -> None:
        """Auto's prediction as a PNG of label space ids in ``output_dir/<dataset>/``."""
        folder = osp.join(self.output_dir, dataset)
        mkdir_or_exist(folder)
        name = osp.splitext(osp.basename(img_path))[0]
        Image.fromarray(prediction.squeeze().cpu().numpy().astype(np.uint8)).save(
            osp.join(folder, f'{name}.png')
        )

    @staticmethod
    def _miou(areas: List[list]) -> Optional[float]:
        if not areas:
            return None
        intersect, union = (torch.stack([a[k] for a in areas]).sum(0) for k in (0, 1))
        iou = intersect / union
        return float(np.round(np.nanmean(iou.numpy()) * 100, 2))
