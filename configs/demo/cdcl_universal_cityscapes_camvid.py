# configs/cdcl_universal_cityscapes_camvid.py at demo size: one classifier of Cityscapes' 19
# classes for the generated Cityscapes and CamVid (docs/universal_label_space.md).
_base_ = [
    './cdcl_cityscapes_camvid.py',
    '../_base_/label_spaces/universal_cityscapes_camvid.py',
]
model = dict(
    label_space={{_base_.label_space}},
    universal_head=True,
    test_cfg=dict(output_space='dataset'),  # as the full-size config's
)
