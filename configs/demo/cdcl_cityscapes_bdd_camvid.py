# configs/cdcl_cityscapes_bdd_camvid.py on the embedded demo data, at demo size: Cityscapes,
# BDD100K (Cityscapes' 19 classes) and CamVid (11), a head each: the per-dataset model of the
# universal measurement with BDD100K (docs/universal_label_space.md).
_base_ = ['./cdcl_cityscapes_camvid.py']
model = dict(
    dataset_names=['cityscapes', 'bdd100k', 'camvid'],
    backbone=dict(num_datasets=3),
    decode_head=dict(num_classes=[19, 19, 11]),
    auxiliary_head=dict(num_classes=[19, 19, 11]),
)
demo_bdd100k_val = dict(
    type='BDD100KDataset',
    data_root='data/demo/bdd100k',
    data_prefix=dict(img_path='images/10k/val', seg_map_path='labels/sem_seg/masks/val'),
    pipeline={{_base_.demo_test_pipeline}},
)
train_dataloader = dict(
    batch_sampler=dict(batch_sizes=dict(_delete_=True, cityscapes=4, bdd100k=4, camvid=4)),
    dataset=dict(
        datasets=dict(
            _delete_=True,
            cityscapes={{_base_.demo_cityscapes_train}},
            bdd100k={{_base_.demo_bdd100k_train}},
            camvid={{_base_.demo_camvid_train}},
        )
    ),
)
test_dataloader = dict(
    dataset=dict(
        datasets=dict(
            _delete_=True,
            cityscapes={{_base_.demo_cityscapes_val}},
            bdd100k=demo_bdd100k_val,
            camvid={{_base_.demo_camvid_val}},
        )
    )
)
curve = {{_base_.demo_curve_images}}  # validation images per dataset (learning curves)
val_dataloader = dict(
    dataset=dict(
        datasets=dict(
            _delete_=True,
            cityscapes=dict(
                type='CityscapesDataset',
                data_root='data/demo/cityscapes',
                data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
                pipeline={{_base_.demo_test_pipeline}},
                indices=curve,
            ),
            bdd100k=dict(demo_bdd100k_val, indices=curve),
            camvid=dict(
                type='CDCLCamVidDataset',
                data_root='data/demo/camvid',
                data_prefix=dict(img_path='images/val', seg_map_path='annotations/val'),
                pipeline={{_base_.demo_test_pipeline}},
                indices=curve,
            ),
        )
    )
)
tta_pipeline = dict(
    _delete_=True,
    cityscapes={{_base_.demo_tta_pipeline}},
    bdd100k={{_base_.demo_tta_pipeline}},
    camvid={{_base_.demo_tta_pipeline}},
)
