# Label-remapping baseline: Cityscapes and BDD100K merged into one label space and trained as
# one dataset: shared BN, one classifier, the same 8 + 8 batches as CDCL. BDD100K's 19 classes
# are Cityscapes' train ids, so the mapping is the identity here; other label spaces list
# theirs (see RemapLabels). Paper (val mIoU): 66.23 / 58.74.
_base_ = ['./pspnet_r18-d8_cityscapes.py']
bdd100k_train = dict(
    type='BDD100KDataset',
    data_root='data/bdd100k',
    data_prefix=dict(img_path='images/10k/train', seg_map_path='labels/sem_seg/masks/train'),
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RemapLabels', mapping={i: i for i in range(19)}),
        dict(type='RandomResize', scale=(1280, 720), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size={{_base_.crop_size}}, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ],
)
train_dataloader = dict(
    batch_size=None,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='MultiDatasetSampler', batch_sizes=dict(cityscapes=8, bdd100k=8)),
    dataset=dict(
        _delete_=True,
        type='CDCLMultiDataset',
        datasets=dict(cityscapes={{_base_.cityscapes_train}}, bdd100k=bdd100k_train),
    ),
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CDCLMultiDataset',
        datasets=dict(cityscapes={{_base_.cityscapes_val}}, bdd100k={{_base_.bdd100k_val}}),
    )
)
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiDatasetIoUMetric')
test_evaluator = val_evaluator
