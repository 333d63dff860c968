# DAT ablation: a backward and an optimizer step per dataset instead of one on the summed loss
# (the paper reports this as unstable).
_base_ = ['../cdcl_cityscapes_bdd.py']
train_cfg = dict(mode='alternate')
