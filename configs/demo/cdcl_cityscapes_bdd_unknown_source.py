# The demo's CDCL model evaluated as deployment sees it: not told where an image comes from.
# Every image is predicted by each branch, by the branch its DSBN statistics choose (auto), by
# all branches combined (ensemble) and by its own dataset's branch (oracle), in CamVid's 11
# classes; the test set adds the generator's CamVid, a third domain the model never saw.
#   python tools/test.py configs/demo/cdcl_cityscapes_bdd_unknown_source.py CHECKPOINT
_base_ = ['./cdcl_cityscapes_bdd.py', '../_base_/label_spaces/cityscapes_to_camvid.py']
model = dict(label_space={{_base_.label_space}}, test_cfg=dict(unknown_source=True))
demo_camvid_val = dict(
    type='CDCLCamVidDataset',
    data_root='data/demo/camvid',
    data_prefix=dict(img_path='images/val', seg_map_path='annotations/val'),
    pipeline={{_base_.demo_test_pipeline}},
)
test_dataloader = dict(dataset=dict(datasets=dict(camvid=demo_camvid_val)))
test_evaluator = dict(_delete_=True, type='UnknownSourceMetric', label_space={{_base_.label_space}})
tta_pipeline = dict(camvid={{_base_.demo_tta_pipeline}})
