# configs/cdcl_cityscapes_bdd_camvid.py on the embedded demo data, at demo size: Cityscapes,
# BDD100K (Cityscapes' 19 classes) and CamVid (11), a head each: the per-dataset model of the
# universal measurement with BDD100K (docs/universal_label_space.md).
_base_ = ['../cdcl_cityscapes_bdd_camvid.py', './_base_/demo_sizes.py']
model = dict(pretrained=None, data_preprocessor=dict(size={{_base_.demo_crop}}))
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    batch_sampler=dict(batch_sizes=dict(cityscapes=4, bdd100k=4, camvid=4)),
    dataset=dict(
        datasets=dict(
            cityscapes={{_base_.demo_cityscapes_train}},
            bdd100k={{_base_.demo_bdd100k_train}},
            camvid={{_base_.demo_camvid_train}},
        )
    ),
)
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        datasets=dict(
            cityscapes={{_base_.demo_cityscapes_val}},
            bdd100k={{_base_.demo_bdd100k_val}},
            camvid={{_base_.demo_camvid_val}},
        )
    ),
)
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        datasets=dict(
            cityscapes={{_base_.demo_cityscapes_curve}},
            bdd100k={{_base_.demo_bdd100k_curve}},
            camvid={{_base_.demo_camvid_curve}},
        )
    ),
)
tta_pipeline = dict(
    cityscapes={{_base_.demo_tta_pipeline}},
    bdd100k={{_base_.demo_tta_pipeline}},
    camvid={{_base_.demo_tta_pipeline}},
)
train_cfg = {{_base_.demo_train_cfg}}
param_scheduler = {{_base_.demo_param_scheduler}}
default_hooks = {{_base_.demo_default_hooks}}
