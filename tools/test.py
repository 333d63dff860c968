"""Test a checkpoint: MMSeg's tools/test.py with the CDCL components registered.

python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR] [--show-dir DIR]
                                       [--cfg-options K=V ...] [--launcher ...] [--tta]
"""

from mmseg_cdcl.utils import run_mmseg_tool

if __name__ == '__main__':
    run_mmseg_tool('test.py')
