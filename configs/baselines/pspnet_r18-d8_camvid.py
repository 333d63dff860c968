# Single-dataset baseline on CamVid (11 classes). Paper (val mIoU): 73.05.
_base_ = ['./pspnet_r18-d8_cityscapes.py']
model = dict(decode_head=dict(num_classes=11), auxiliary_head=dict(num_classes=11))
train_dataloader = dict(dataset={{_base_.camvid_train}})
val_dataloader = dict(dataset={{_base_.camvid_val}})
test_dataloader = dict(dataset={{_base_.camvid_test}})
