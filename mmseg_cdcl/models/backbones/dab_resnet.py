"""ResNet of Dataset-Aware Blocks (DAB): convs shared by all datasets, BatchNorms per dataset."""

from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS

from ..layers import DSBN_CFG, dsbn_cfg


@MODELS.register_module()
class DABResNet(ResNet):
    """MMSeg's ResNet whose every norm (stem, blocks, downsample) is a DSBN.

    Checkpoint keys are MMSeg's, so an ImageNet ResNet checkpoint loads into every dataset's
    branch; everything else (``norm_eval``, ``frozen_stages``, dilations) is MMSeg's ResNet.

    Args:
        num_datasets (int): Number of datasets (DSBN branches).
        norm_cfg (dict): Norm of every block. Defaults to DSBN.
        **kwargs: Arguments of :class:`mmseg.models.backbones.ResNet`.

    Example:
        >>> backbone = dict(type='DABResNetV1c', num_datasets=2, depth=18,
        ...                 dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
        ...                 init_cfg=dict(type='Pretrained',
        ...                               checkpoint='open-mmlab://resnet18_v1c'))
    """

    plain_type = 'ResNet'  # what export_single_dataset turns it into

    def __init__(self, num_datasets: int, norm_cfg: dict = DSBN_CFG, **kwargs):
        super().__init__(norm_cfg=dsbn_cfg(norm_cfg, num_datasets, type(self).__name__), **kwargs)
        self.num_datasets = num_datasets


@MODELS.register_module()
class DABResNetV1c(DABResNet):
    """ResNetV1c (deep stem) of Dataset-Aware Blocks, the backbone of the paper's PSPNet-R18."""

    plain_type = 'ResNetV1c'

    def __init__(self, **kwargs):
        super().__init__(deep_stem=True, avg_down=False, **kwargs)
