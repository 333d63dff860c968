# CDCL over Cityscapes + CamVid with one classifier for both: it predicts Cityscapes' 19 classes
# (the universal classes), each CamVid label trains it as the union of its Cityscapes classes
# (-log of their summed probability), DSBN stays per dataset (docs/universal_label_space.md).
_base_ = ['./cdcl_cityscapes_camvid.py', './_base_/label_spaces/universal_cityscapes_camvid.py']
model = dict(
    label_space={{_base_.label_space}},
    universal_head=True,
    # Validation and tools/test.py score each dataset in its own classes (CamVid's labels are
    # unions of universal classes: they cannot be scored in them). Predictions in the 19
    # classes: model.test_cfg.output_space='label_space'.
    test_cfg=dict(output_space='dataset'),
)
