# Joint-training baseline (configs/baselines/pspnet_r18-d8_cityscapes_bdd100k_label_remap.py:
# one label space, shared BN, one classifier) at demo size, on CDCL's batches.
_base_ = ['../baselines/pspnet_r18-d8_cityscapes_bdd100k_label_remap.py',
          './_base_/demo_sizes.py']
model = dict(pretrained=None, data_preprocessor=dict(size={{_base_.demo_crop}}))
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    batch_sampler=dict(batch_sizes=dict(cityscapes=4, bdd100k=4)),
    dataset=dict(datasets=dict(cityscapes={{_base_.demo_cityscapes_train}},
                               bdd100k={{_base_.demo_bdd100k_train}})))
val_dataloader = {{_base_.demo_val_dataloader}}
test_dataloader = val_dataloader
train_cfg = {{_base_.demo_train_cfg}}
param_scheduler = {{_base_.demo_param_scheduler}}
default_hooks = {{_base_.demo_default_hooks}}
