# The datasets of the paper, each with its own pipeline, for MultiDataset configs to combine
# ({{_base_.cityscapes_train}}, ...). Random 512x512 crops as in the paper; each dataset is
# resized around its native scale first. Folder layouts: README, "Data preparation".
crop_size = (512, 512)


def _pipelines(scale):
    train = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ]
    test = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=scale, keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs'),
    ]
    # tools/test.py --tta: MMSeg's multi-scale and flip views, the scales relative to the
    # dataset's test scale (ratio 1 is its test pipeline).
    tta = [
        dict(type='LoadImageFromFile'),
        dict(
            type='TestTimeAug',
            transforms=[
                [
                    dict(
                        type='Resize', scale=(int(scale[0] * r), int(scale[1] * r)), keep_ratio=True
                    )
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
    return train, test, tta


cityscapes_train_pipeline, cityscapes_test_pipeline, cityscapes_tta_pipeline = _pipelines(
    (2048, 1024)
)
bdd100k_train_pipeline, bdd100k_test_pipeline, bdd100k_tta_pipeline = _pipelines((1280, 720))
camvid_train_pipeline, camvid_test_pipeline, camvid_tta_pipeline = _pipelines((480, 360))


def _split(type, root, img, ann, pipeline):
    return dict(
        type=type,
        data_root=root,
        data_prefix=dict(img_path=img, seg_map_path=ann),
        pipeline=pipeline,
    )


cityscapes_train = _split(
    'CityscapesDataset',
    'data/cityscapes',
    'leftImg8bit/train',
    'gtFine/train',
    cityscapes_train_pipeline,
)
cityscapes_val = _split(
    'CityscapesDataset',
    'data/cityscapes',
    'leftImg8bit/val',
    'gtFine/val',
    cityscapes_test_pipeline,
)
bdd100k_train = _split(
    'BDD100KDataset',
    'data/bdd100k',
    'images/10k/train',
    'labels/sem_seg/masks/train',
    bdd100k_train_pipeline,
)
bdd100k_val = _split(
    'BDD100KDataset',
    'data/bdd100k',
    'images/10k/val',
    'labels/sem_seg/masks/val',
    bdd100k_test_pipeline,
)
camvid_train = _split(
    'CDCLCamVidDataset', 'data/camvid', 'images/train', 'annotations/train', camvid_train_pipeline
)
camvid_val = _split(
    'CDCLCamVidDataset', 'data/camvid', 'images/val', 'annotations/val', camvid_test_pipeline
)
camvid_test = _split(
    'CDCLCamVidDataset', 'data/camvid', 'images/test', 'annotations/test', camvid_test_pipeline
)
