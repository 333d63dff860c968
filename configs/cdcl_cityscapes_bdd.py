# CDCL (DSBN + DAT) over Cityscapes + BDD100K, the paper's main setting: PSPNet-R18-D8 from
# ImageNet, 8 + 8 images of 512x512 per iteration. Paper (val mIoU): 72.63 / 60.47
# (single-dataset 67.52 / 53.88).
_base_ = [
    './_base_/models/cdcl_pspnet_r18-d8.py',
    './_base_/datasets/cdcl_datasets.py',
    './_base_/schedules/cdcl_schedule_80k.py',
    './_base_/cdcl_runtime.py',
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    dataset_names=['cityscapes', 'bdd100k'],
    backbone=dict(num_datasets=2),
    decode_head=dict(num_classes=[19, 19]),
    auxiliary_head=dict(num_classes=[19, 19]),
)
train_dataloader = dict(
    batch_size=None,  # per dataset: batch_sampler.batch_sizes
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='MultiDatasetSampler', batch_sizes=dict(cityscapes=8, bdd100k=8)),
    dataset=dict(
        type='CDCLMultiDataset',
        datasets=dict(cityscapes={{_base_.cityscapes_train}}, bdd100k={{_base_.bdd100k_train}}),
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CDCLMultiDataset',
        datasets=dict(cityscapes={{_base_.cityscapes_val}}, bdd100k={{_base_.bdd100k_val}}),
    ),
)
test_dataloader = val_dataloader
# tools/test.py --tta: each dataset's views (MultiDataset takes a pipeline per dataset).
tta_pipeline = dict(
    cityscapes={{_base_.cityscapes_tta_pipeline}}, bdd100k={{_base_.bdd100k_tta_pipeline}}
)
val_evaluator = dict(type='MultiDatasetIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
