"""MMSeg's visualizer drawing each sample in its own dataset's classes and colours."""

from typing import Optional

from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer


@VISUALIZERS.register_module()
class CDCLSegLocalVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` for the label spaces of a ``MultiDataset``.

    In CDCL each dataset keeps its own classes, so a CamVid prediction's class 3 is CamVid's
    road, not Cityscapes' wall. The runner gives the visualizer the MultiDataset's metainfo,
    whose ``classes`` and ``palette`` are its first dataset's; this visualizer draws a data
    sample that carries ``dataset_name`` with ``dataset_meta['datasets'][dataset_name]``'s
    classes and palette instead, and any other sample as ``SegLocalVisualizer`` does.

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
        super().__init__(name, **kwargs)
        self.with_labels = with_labels

    @master_only
    def add_datasample(
        self, name: str, image, data_sample: Optional[SegDataSample] = None, *args, **kwargs
    ) -> None:
        if len(args) < 7:  # not given positionally (after draw_gt, ..., step)
            kwargs.setdefault('with_labels', self.with_labels)
        own = self.dataset_meta
        dataset = data_sample.get('dataset_name') if data_sample is not None else None
        if dataset is not None and 'datasets' in (own or {}):
            if dataset not in own['datasets']:
                raise ValueError(
                    f"CDCLSegLocalVisualizer: data sample of dataset '{dataset}' "
                    f"but dataset_meta['datasets'] holds {list(own['datasets'])}"
                )
            meta = own['datasets'][dataset]
            self.dataset_meta = dict(classes=meta['classes'], palette=meta['palette'])
        try:
            super().add_datasample(name, image, data_sample, *args, **kwargs)
        finally:
            self.dataset_meta = own
