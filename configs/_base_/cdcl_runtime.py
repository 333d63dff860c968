_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_cdcl'], allow_failed_imports=False)
# RNGStateHook: a resumed run repeats the uninterrupted one (with randomness.seed set).
# CheckpointDatasetsHook: load_from, --resume and tools/test.py read a checkpoint's datasets as
# load_cdcl_checkpoint does (its meta too). CheckpointAllowListHook: they read mmengine's
# checkpoints under torch's safe loader, for the run's loads only (docs/reliability.md).
custom_hooks = [
    dict(type='ProgressBarHook'),
    dict(type='RNGStateHook'),
    dict(type='CheckpointDatasetsHook'),
    dict(type='CheckpointAllowListHook'),
]
# Draws each sample (tools/test.py --show-dir) in its own dataset's classes and colours.
visualizer = dict(type='CDCLSegLocalVisualizer')
# tools/test.py --tta: MMSeg's SegTTAModel, with the dataset scores of images of unknown
# source (auto, ensemble) averaged over their views.
tta_model = dict(type='CDCLTTAModel')
