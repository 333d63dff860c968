# DAT ablation: interval t = 2, Cityscapes in every iteration, BDD100K in every 2nd (the paper
# finds t = 1, configs/cdcl_cityscapes_bdd.py, best).
_base_ = ['../cdcl_cityscapes_bdd.py']
train_dataloader = dict(batch_sampler=dict(intervals=dict(bdd100k=2)))
