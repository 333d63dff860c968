# configs/cdcl_cityscapes_camvid.py on the embedded demo data, at demo size: two datasets of
# different label spaces (Cityscapes' 19 classes, CamVid's 11), the model from which
# tools/analysis/learn_label_space.py learns their relation (docs/label_space.md).
_base_ = ['../cdcl_cityscapes_camvid.py', './_base_/demo_sizes.py']
model = dict(pretrained=None, data_preprocessor=dict(size={{_base_.demo_crop}}))
demo_camvid_train = dict(
    type='CDCLCamVidDataset',
    data_root='data/demo/camvid',
    data_prefix=dict(img_path='images/train', seg_map_path='annotations/train'),
    pipeline={{_base_.demo_train_pipeline}},
)
demo_camvid_val = dict(
    demo_camvid_train,
    data_prefix=dict(img_path='images/val', seg_map_path='annotations/val'),
    pipeline={{_base_.demo_test_pipeline}},
)
demo_cityscapes_val = dict(
    type='CityscapesDataset',
    data_root='data/demo/cityscapes',
    data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
    pipeline={{_base_.demo_test_pipeline}},
)
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    batch_sampler=dict(batch_sizes=dict(_delete_=True, cityscapes=4, camvid=4)),
    dataset=dict(
        datasets=dict(
            _delete_=True, cityscapes={{_base_.demo_cityscapes_train}}, camvid=demo_camvid_train
        )
    ),
)
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        _delete_=True,
        type='CDCLMultiDataset',
        datasets=dict(cityscapes=demo_cityscapes_val, camvid=demo_camvid_val),
    ),
)
val_dataloader = dict(
    test_dataloader,
    dataset=dict(
        _delete_=True,
        type='CDCLMultiDataset',
        datasets=dict(
            cityscapes=dict(demo_cityscapes_val, indices={{_base_.demo_curve_images}}),
            camvid=dict(demo_camvid_val, indices={{_base_.demo_curve_images}}),
        ),
    ),
)
tta_pipeline = dict(cityscapes={{_base_.demo_tta_pipeline}}, camvid={{_base_.demo_tta_pipeline}})
train_cfg = {{_base_.demo_train_cfg}}
param_scheduler = {{_base_.demo_param_scheduler}}
default_hooks = {{_base_.demo_default_hooks}}
