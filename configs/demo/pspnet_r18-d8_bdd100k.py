# Single-dataset baseline on BDD100K at demo size.
_base_ = ['./pspnet_r18-d8_cityscapes.py']
train_dataloader = dict(dataset={{_base_.demo_bdd100k_train}})
