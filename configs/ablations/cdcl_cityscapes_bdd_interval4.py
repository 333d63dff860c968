# DAT ablation: interval t = 4 (BDD100K in every 4th iteration).
_base_ = ['../cdcl_cityscapes_bdd.py']
train_dataloader = dict(batch_sampler=dict(intervals=dict(bdd100k=4)))
