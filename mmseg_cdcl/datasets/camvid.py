"""CamVid with the 11 classes of SegNet's split, the CamVid the CDCL paper uses."""

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


@DATASETS.register_module(name='CDCLCamVidDataset')  # and 'CamVidDataset': datasets/__init__
class CamVidDataset(BaseSegDataset):
    """CamVid, 11 classes (SegNet split: 367 train / 101 val / 233 test images of 360×480).

    Layout (``tools/dataset_converters/camvid.py`` writes it from the common raw layouts)::

        data/camvid/images/{train,val,test}/<name>.png       RGB
        data/camvid/annotations/{train,val,test}/<name>.png  class index 0-10, 255 = void

    Example:
        >>> dataset = dict(type='CDCLCamVidDataset', data_root='data/camvid',
        ...                data_prefix=dict(img_path='images/train',
        ...                                 seg_map_path='annotations/train'))
    """

    METAINFO = dict(
        classes=(
            'sky',
            'building',
            'pole',
            'road',
            'sidewalk',
            'tree',
            'sign',
            'fence',
            'car',
            'pedestrian',
            'bicyclist',
        ),
        palette=[
            [128, 128, 128],
            [128, 0, 0],
            [192, 192, 128],
            [128, 64, 128],
            [60, 40, 222],
            [128, 128, 0],
            [192, 128, 128],
            [64, 64, 128],
            [64, 0, 128],
            [64, 64, 0],
            [0, 128, 192],
        ],
    )

    def __init__(self, img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False, **kwargs):
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs,
        )
