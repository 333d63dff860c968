# configs/cdcl_cityscapes_camvid.py on the embedded demo data, at demo size: two datasets of
# different label spaces (Cityscapes' 19 classes, CamVid's 11), the model from which
# tools/analysis/learn_label_space.py learns their relation (docs/label_space.md).
_base_ = ['../cdcl_cityscapes_camvid.py', './_base_/demo_sizes.py']
model = dict(pretrained=None, data_preprocessor=dict(size={{_base_.demo_crop}}))
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    batch_sampler=dict(batch_sizes=dict(_delete_=True, cityscapes=4, camvid=4)),
    dataset=dict(
        datasets=dict(
            _delete_=True,
            cityscapes={{_base_.demo_cityscapes_train}},
            camvid={{_base_.demo_camvid_train}},
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
        datasets=dict(cityscapes={{_base_.demo_cityscapes_val}}, camvid={{_base_.demo_camvid_val}}),
    ),
)
val_dataloader = dict(
    test_dataloader,
    dataset=dict(
        _delete_=True,
        type='CDCLMultiDataset',
        datasets=dict(
            cityscapes={{_base_.demo_cityscapes_curve}}, camvid={{_base_.demo_camvid_curve}}
        ),
    ),
)
tta_pipeline = dict(cityscapes={{_base_.demo_tta_pipeline}}, camvid={{_base_.demo_tta_pipeline}})
train_cfg = {{_base_.demo_train_cfg}}
param_scheduler = {{_base_.demo_param_scheduler}}
default_hooks = {{_base_.demo_default_hooks}}
