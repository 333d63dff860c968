# configs/cdcl_cityscapes_bdd.py on the embedded demo data, at demo size.
_base_ = ['../cdcl_cityscapes_bdd.py', './_base_/demo_sizes.py']
model = dict(pretrained=None, data_preprocessor=dict(size={{_base_.demo_crop}}))
train_dataloader = {{_base_.demo_two_dataset_train}}
val_dataloader = {{_base_.demo_val_dataloader}}
test_dataloader = {{_base_.demo_test_dataloader}}
tta_pipeline = dict(cityscapes={{_base_.demo_tta_pipeline}}, bdd100k={{_base_.demo_tta_pipeline}})
train_cfg = {{_base_.demo_train_cfg}}
param_scheduler = {{_base_.demo_param_scheduler}}
default_hooks = {{_base_.demo_default_hooks}}
