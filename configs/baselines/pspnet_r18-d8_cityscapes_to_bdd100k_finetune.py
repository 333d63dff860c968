# Finetuning baseline: the Cityscapes model (pspnet_r18-d8_cityscapes.py) trained further on
# BDD100K, evaluated on both. Paper (val mIoU): 67.79 / 58.30.
_base_ = ['./pspnet_r18-d8_bdd100k.py']
load_from = 'work_dirs/pspnet_r18-d8_cityscapes/iter_80000.pth'
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
