"""PSPNet head of Dataset-Aware Blocks with one classifier per dataset."""

from mmseg.models.decode_heads import PSPHead
from mmseg.registry import MODELS

from .dataset_aware_head import DatasetAwareHeadMixin


@MODELS.register_module()
class DABPSPHead(DatasetAwareHeadMixin, PSPHead):
    """MMSeg's PSPHead (pyramid pooling + bottleneck) with DSBN norms and per-dataset classifiers.

    Example:
        >>> decode_head = dict(type='DABPSPHead', in_channels=512, channels=128,
        ...                    pool_scales=(1, 2, 3, 6), num_classes=[19, 19, 11])
    """

    plain_type = 'PSPHead'  # what export_single_dataset turns it into
