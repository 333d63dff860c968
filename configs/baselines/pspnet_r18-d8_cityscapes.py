# Single-dataset baseline: stock PSPNet-R18-D8 on Cityscapes alone, the paper's schedule and
# 8 images of 512x512 per iteration. Paper (val mIoU): 67.52.
_base_ = [
    '../_base_/models/pspnet_r18-d8.py',
    '../_base_/datasets/cdcl_datasets.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/cdcl_runtime.py',
]
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
# backend_args: checkpoints written atomically (a kill while saving leaves the previous one
# whole, for --resume), mmseg_cdcl's AtomicLocalBackend.
default_hooks = dict(
    checkpoint=dict(
        save_best='mIoU', max_keep_ckpts=2, backend_args=dict(backend='cdcl_atomic_local')
    )
)
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset={{_base_.cityscapes_train}},
)
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.cityscapes_val}},
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
