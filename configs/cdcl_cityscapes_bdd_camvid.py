# CDCL over Cityscapes + BDD100K + CamVid. Paper (val mIoU): 73.17 / 60.45 / 78.84 (CamVid
# single-dataset 73.05).
_base_ = ['./cdcl_cityscapes_bdd.py']
model = dict(
    dataset_names=['cityscapes', 'bdd100k', 'camvid'],
    backbone=dict(num_datasets=3),
    decode_head=dict(num_classes=[19, 19, 11]),
    auxiliary_head=dict(num_classes=[19, 19, 11]),
)
train_dataloader = dict(
    batch_sampler=dict(batch_sizes=dict(cityscapes=8, bdd100k=8, camvid=8)),
    dataset=dict(datasets=dict(camvid={{_base_.camvid_train}})),
)
val_dataloader = dict(dataset=dict(datasets=dict(camvid={{_base_.camvid_val}})))
test_dataloader = val_dataloader
tta_pipeline = dict(camvid={{_base_.camvid_tta_pipeline}})
