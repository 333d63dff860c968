# What the embedded demo changes in the paper's configs so that four models train in minutes on
# a 2-core CPU: the generated data (tools/make_demo_data.py, 128x256 street scenes) instead of
# the real datasets, small crops and batches, a short schedule, no ImageNet weights (offline).
demo_root = 'data/demo'
# Images per split and dataset that tools/run_demo.py generates. Testing is cheap next to
# training (0.07-0.08 s an image on the 2-core CPU, a training iteration 0.24-0.46 s), so the
# table is measured on many validation images: the bootstrap intervals narrow as 1/sqrt(images).
demo_num_images = dict(train=24, val=100)
demo_image_size = (128, 256)
demo_curve_images = 16  # per dataset: validation during training, for the learning curves
demo_crop = (96, 96)
demo_iters = 240
demo_val_interval = 60  # validation points of the learning curves
# `make demo` (tools/run_demo.py) trains these configs on smaller crops and fewer iterations so
# that its five models fit in five minutes on a 2-core CPU (measured: docs/demo.md); every
# difference of its table stays established. The configs' own sizes above are those of the
# documented analyses (docs/label_space.md, docs/new_camera.md, docs/universal_label_space.md).
make_demo_crop = (64, 64)
make_demo_iters = 100
make_demo_val_interval = 50
demo_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=demo_crop, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
demo_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# tools/test.py --tta: the demo test scale's multi-scale and flip views, as the paper configs'.
demo_tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale=(int(256 * r), int(128 * r)), keep_ratio=True)
                for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
            ],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ],
    ),
]


def _split(type, name, img, ann, pipeline):
    return dict(
        type=type,
        data_root=f'{demo_root}/{name}',
        data_prefix=dict(img_path=img, seg_map_path=ann),
        pipeline=pipeline,
    )


demo_cityscapes_train = _split(
    'CityscapesDataset', 'cityscapes', 'leftImg8bit/train', 'gtFine/train', demo_train_pipeline
)
demo_bdd100k_train = _split(
    'BDD100KDataset',
    'bdd100k',
    'images/10k/train',
    'labels/sem_seg/masks/train',
    demo_train_pipeline,
)
# What the two-dataset demo configs change in their MultiDataset training loader.
demo_two_dataset_train = dict(
    num_workers=0,
    persistent_workers=False,
    batch_sampler=dict(batch_sizes=dict(cityscapes=4, bdd100k=4)),
    dataset=dict(datasets=dict(cityscapes=demo_cityscapes_train, bdd100k=demo_bdd100k_train)),
)
demo_cityscapes_val = _split(
    'CityscapesDataset', 'cityscapes', 'leftImg8bit/val', 'gtFine/val', demo_test_pipeline
)
demo_bdd100k_val = _split(
    'BDD100KDataset', 'bdd100k', 'images/10k/val', 'labels/sem_seg/masks/val', demo_test_pipeline
)
demo_camvid_train = _split(
    'CDCLCamVidDataset', 'camvid', 'images/train', 'annotations/train', demo_train_pipeline
)
demo_camvid_val = _split(
    'CDCLCamVidDataset', 'camvid', 'images/val', 'annotations/val', demo_test_pipeline
)
# Validation during training: the first demo_curve_images of each (the learning curves).
demo_cityscapes_curve = dict(demo_cityscapes_val, indices=demo_curve_images)
demo_bdd100k_curve = dict(demo_bdd100k_val, indices=demo_curve_images)
demo_camvid_curve = dict(demo_camvid_val, indices=demo_curve_images)
# Every demo model is tested on all validation images of both datasets (the table), and
# validated during training on the first demo_curve_images of each (the learning curves).
demo_test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        _delete_=True,  # whatever dataset the config evaluated on before
        type='CDCLMultiDataset',
        datasets=dict(cityscapes=demo_cityscapes_val, bdd100k=demo_bdd100k_val),
    ),
)
demo_val_dataloader = dict(
    demo_test_dataloader,
    dataset=dict(
        _delete_=True,
        type='CDCLMultiDataset',
        datasets=dict(cityscapes=demo_cityscapes_curve, bdd100k=demo_bdd100k_curve),
    ),
)
demo_train_cfg = dict(max_iters=demo_iters, val_interval=demo_val_interval)
demo_param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=demo_iters, by_epoch=False)
]
demo_default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=demo_iters, max_keep_ckpts=1, save_best=None)
)
