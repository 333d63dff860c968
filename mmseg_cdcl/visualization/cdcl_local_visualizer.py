"""MMSeg's visualizer drawing each sample in the classes and colours of its prediction's space."""

import logging
from typing import Optional

from mmengine.dist import master_only
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from ..structures.prediction_space import (
    Unresolved,
    labels_in_space,
    resolve_space,
    space_meta,
    stated_space,
    uncomparable,
)


@VISUALIZERS.register_module()
class CDCLSegLocalVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` that draws each sample in the label space of its prediction.

    In CDCL each dataset keeps its own classes, so a CamVid prediction's class 3 is CamVid's
    road, not Cityscapes' wall, and a model with a ``label_space`` predicts in its classes. The
    runner gives the visualizer the MultiDataset's metainfo, whose ``classes`` and ``palette``
    are its first dataset's; this visualizer draws a prediction with the classes and palette of
    the space it states (``prediction_space``, :mod:`mmseg_cdcl.structures.prediction_space`: its
    dataset's, from ``dataset_meta['datasets']``, or the label space's), and the ground truth in
    that space too (mapped into a label space), or not at all where it cannot be put there
    (a warning says so). A sample without a prediction is drawn in its dataset's classes
    (``dataset_name``), any other as ``SegLocalVisualizer`` draws it.

    Args:
        with_labels (bool): Whether ``add_datasample`` writes each class's name in a box on
            the drawing when its caller does not say (MMSeg's visualization hook never does):
            the boxes hide much of a small image. Defaults to True, as in MMSeg.
        **kwargs: Arguments of ``SegLocalVisualizer``.

    Example:
        >>> visualizer = dict(type='CDCLSegLocalVisualizer', with_labels=False,
        ...                   vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
    """

    def __init__(self, name: str = 'visualizer', with_labels: bool = True, **kwargs):
        self._datasets = {}  # every dataset's metainfo it was given, by name
        super().__init__(name, **kwargs)
        self.with_labels = with_labels
        self._warned = False

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    @master_only
    def dataset_meta(self, meta: Optional[dict]) -> None:
        """As mmengine's; the datasets of every metainfo it is given stay known by name:
        ``tools/test.py`` builds the training loop after the test loop (``runner.iter``),
        whose ``MultiDataset`` metainfo replaces the test set's, and a test dataset that the
        training set lacks (CamVid of the unknown-source config) would lose its classes."""
        self._datasets.update((meta or {}).get('datasets') or {})
        self._dataset_meta = meta

    def set_dataset_meta(self, classes=None, palette=None, dataset_name=None) -> None:
        """MMSeg's, keeping classes that no one space resolves (``MMSegInferencer`` passes a
        CDCL model's ``dataset_meta``): each prediction states its own."""
        if isinstance(classes, Unresolved) or isinstance(palette, Unresolved):
            self.dataset_meta = dict(classes=classes, palette=palette)
            return
        super().set_dataset_meta(classes, palette, dataset_name)

    @master_only
    def add_datasample(
        self, name: str, image, data_sample: Optional[SegDataSample] = None, *args, **kwargs
    ) -> None:
        if len(args) < 7:  # not given positionally (after draw_gt, ..., step)
            kwargs.setdefault('with_labels', self.with_labels)
        own = self.dataset_meta
        if data_sample is not None:
            known = own
            if self._datasets:
                known = dict(
                    own or {}, datasets={**self._datasets, **(own or {}).get('datasets', {})}
                )
            data_sample, meta = self._in_one_space(data_sample, known)
            if meta is not None:
                self.dataset_meta = meta
        try:
            super().add_datasample(name, image, data_sample, *args, **kwargs)
        finally:
            self.dataset_meta = own

    def _in_one_space(self, sample: SegDataSample, own: Optional[dict]):
        """The sample with its ground truth in its prediction's space (or without it), and
        that space's ``classes`` and ``palette``; None for a sample of no known space."""
        datasets = (own or {}).get('datasets')
        dataset = sample.get('dataset_name')
        if 'pred_sem_seg' not in sample and 'seg_logits' not in sample:
            if dataset is None or datasets is None:
                return sample, None
            if dataset not in datasets:
                raise ValueError(
                    f"CDCLSegLocalVisualizer: data sample of dataset '{dataset}' "
                    f"but dataset_meta['datasets'] holds {list(datasets)}"
                )
            return sample, space_meta(resolve_space(sample, own))
        if stated_space(sample) is None and (dataset is None or datasets is None):
            return sample, None  # a stock prediction: as SegLocalVisualizer draws it
        space = resolve_space(sample, own)
        if 'gt_sem_seg' in sample:
            label = labels_in_space(sample, sample.gt_sem_seg.data, space, own)
            if label is not sample.gt_sem_seg.data:
                sample = sample.clone()
                if label is None:
                    del sample.gt_sem_seg
                    if not self._warned:
                        print_log(
                            'CDCLSegLocalVisualizer: ground truth not drawn, '
                            + uncomparable(sample, space, own),
                            logger='current',
                            level=logging.WARNING,
                        )
                        self._warned = True
                else:
                    sample.gt_sem_seg = PixelData(data=label)
        return sample, space_meta(space)
