"""FCN head of Dataset-Aware Blocks with one classifier per dataset (PSPNet's auxiliary head)."""

from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS

from .dataset_aware_head import DatasetAwareHeadMixin


@MODELS.register_module()
class DABFCNHead(DatasetAwareHeadMixin, FCNHead):
    """MMSeg's FCNHead with DSBN norms and per-dataset classifiers.

    Example:
        >>> auxiliary_head = dict(type='DABFCNHead', in_channels=256, channels=64,
        ...                       num_convs=1, num_classes=[19, 19, 11],
        ...                       loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))
    """

    plain_type = 'FCNHead'
