# Single-dataset baseline on BDD100K. Paper (val mIoU): 53.88.
_base_ = ['./pspnet_r18-d8_cityscapes.py']
train_dataloader = dict(dataset={{_base_.bdd100k_train}})
val_dataloader = dict(dataset={{_base_.bdd100k_val}})
test_dataloader = val_dataloader
