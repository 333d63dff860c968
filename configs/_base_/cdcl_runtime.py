_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_cdcl'], allow_failed_imports=False)
custom_hooks = [dict(type='ProgressBarHook')]
