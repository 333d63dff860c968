# The universal model with BDD100K at demo size: one classifier of Cityscapes' 19 classes for
# the generated Cityscapes, BDD100K and CamVid (BDD100K's classes are the 19 themselves: the
# label space needs no mapping for it), DSBN per dataset (docs/universal_label_space.md).
_base_ = [
    './cdcl_cityscapes_bdd_camvid.py',
    '../_base_/label_spaces/universal_cityscapes_camvid.py',
]
model = dict(
    label_space={{_base_.label_space}},
    universal_head=True,
    test_cfg=dict(output_space='dataset'),
)
