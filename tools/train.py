"""Train a segmentor: MMSeg's tools/train.py with the CDCL components registered.

python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp] [--cfg-options K=V ...]
                             [--launcher {none,pytorch,slurm,mpi}]
"""

from mmseg_cdcl.utils import run_mmseg_tool

if __name__ == '__main__':
    run_mmseg_tool('train.py')
