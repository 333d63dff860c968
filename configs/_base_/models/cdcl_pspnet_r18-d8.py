# CDCL PSPNet-R18-D8: the paper's network (MMSeg's PSPNet-R18-D8) with Dataset-Aware Blocks.
# Dataset configs set dataset_names, num_datasets and the per-dataset num_classes.
_base_ = ['mmseg::_base_/models/pspnet_r50-d8.py']

# One BatchNorm per dataset; for multi-GPU statistics use dict(type='DSBN', sync=True, ...).
dsbn = dict(type='DSBN', requires_grad=True)
model = dict(
    type='CDCLEncoderDecoder',
    dataset_names=['cityscapes', 'bdd100k'],
    pretrained='open-mmlab://resnet18_v1c',  # ImageNet, as the paper; loads into every branch
    backbone=dict(type='DABResNetV1c', depth=18, num_datasets=2, norm_cfg=dsbn),
    decode_head=dict(
        type='DABPSPHead', in_channels=512, channels=128, num_classes=[19, 19], norm_cfg=dsbn
    ),
    auxiliary_head=dict(
        type='DABFCNHead', in_channels=256, channels=64, num_classes=[19, 19], norm_cfg=dsbn
    ),
)
