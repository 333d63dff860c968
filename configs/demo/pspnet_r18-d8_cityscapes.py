# Single-dataset baseline (configs/baselines/pspnet_r18-d8_cityscapes.py) at demo size: as many
# Cityscapes images per iteration as CDCL draws of each dataset.
_base_ = ['../baselines/pspnet_r18-d8_cityscapes.py', './_base_/demo_sizes.py']
model = dict(pretrained=None, data_preprocessor=dict(size={{_base_.demo_crop}}))
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, dataset={{_base_.demo_cityscapes_train}}
)
val_dataloader = {{_base_.demo_val_dataloader}}
test_dataloader = {{_base_.demo_test_dataloader}}
val_evaluator = dict(type='MultiDatasetIoUMetric')
test_evaluator = val_evaluator
train_cfg = {{_base_.demo_train_cfg}}
param_scheduler = {{_base_.demo_param_scheduler}}
default_hooks = {{_base_.demo_default_hooks}}
