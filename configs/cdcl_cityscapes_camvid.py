# CDCL over Cityscapes (19 classes) + CamVid (11 classes): different label spaces, one
# classifier each. The paper reports this pair too; no number is quoted here.
_base_ = ['./cdcl_cityscapes_bdd.py']
model = dict(
    dataset_names=['cityscapes', 'camvid'],
    decode_head=dict(num_classes=[19, 11]),
    auxiliary_head=dict(num_classes=[19, 11]),
)
train_dataloader = dict(
    batch_sampler=dict(batch_sizes=dict(_delete_=True, cityscapes=8, camvid=8)),
    dataset=dict(
        datasets=dict(
            _delete_=True, cityscapes={{_base_.cityscapes_train}}, camvid={{_base_.camvid_train}}
        )
    ),
)
val_dataloader = dict(
    dataset=dict(
        datasets=dict(
            _delete_=True, cityscapes={{_base_.cityscapes_val}}, camvid={{_base_.camvid_val}}
        )
    )
)
test_dataloader = val_dataloader
tta_pipeline = dict(
    _delete_=True,
    cityscapes={{_base_.cityscapes_tta_pipeline}},
    camvid={{_base_.camvid_tta_pipeline}},
)
