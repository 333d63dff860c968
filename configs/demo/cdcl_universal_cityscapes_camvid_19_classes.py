# The demo's universal model tested in the 19 universal classes: CamVid's validation images with
# each scene's label in Cityscapes' 19 classes (tools/make_demo_data.py --universal-labels; no
# training reads them), Cityscapes' with its own labels (the same classes). The dataset keeps
# the name 'camvid': its images go through CamVid's branch (DSBN) and test pipeline.
_base_ = ['./cdcl_universal_cityscapes_camvid.py']
model = dict(test_cfg=dict(output_space='label_space'))
demo_camvid_universal_val = dict(
    type='BaseSegDataset',
    metainfo=dict(classes={{_base_.label_space.classes}}, palette={{_base_.label_space.palette}}),
    data_root='data/demo/camvid',
    data_prefix=dict(img_path='images/val', seg_map_path='universal_annotations/val'),
    img_suffix='.png',
    seg_map_suffix='.png',
    pipeline={{_base_.demo_test_pipeline}},
)
# A test config: it trains nothing (tools/test.py --show-dir would otherwise build the training
# loop, whose dataset's metainfo the drawings would then use).
train_dataloader = train_cfg = optim_wrapper = param_scheduler = None
test_dataloader = dict(
    dataset=dict(
        datasets=dict(
            _delete_=True,
            cityscapes={{_base_.demo_cityscapes_val}},
            camvid=demo_camvid_universal_val,
        )
    )
)
