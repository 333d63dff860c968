# Joint-training baseline (configs/baselines/pspnet_r18-d8_cityscapes_bdd100k_label_remap.py:
# one label space, shared BN, one classifier) at demo size, on CDCL's batches.
_base_ = ['../baselines/pspnet_r18-d8_cityscapes_bdd100k_label_remap.py', './_base_/demo_sizes.py']
model = dict(pretrained=None, data_preprocessor=dict(size={{_base_.demo_crop}}))
train_dataloader = {{_base_.demo_two_dataset_train}}
val_dataloader = {{_base_.demo_val_dataloader}}
test_dataloader = {{_base_.demo_test_dataloader}}
train_cfg = {{_base_.demo_train_cfg}}
param_scheduler = {{_base_.demo_param_scheduler}}
default_hooks = {{_base_.demo_default_hooks}}
