"""tools/train.py once for each ``CONFIG WORK_DIR`` pair, in one distributed launch: the DAT
modes' two-process tests pay torchrun's and the imports' start-up once, not once per mode.

torchrun --nproc_per_node=2 tests/helpers/train_each.py CONFIG WORK_DIR [CONFIG WORK_DIR ...]

Each run is tools/train.py's (``run_mmseg_tool``, ``--launcher pytorch``); the process group the
first run starts serves the others (mmengine starts one only where none is).
"""

import sys

from mmseg_cdcl.utils import run_mmseg_tool

if __name__ == '__main__':
    pairs = sys.argv[1:]
    for config, work_dir in zip(pairs[::2], pairs[1::2]):
        sys.argv = [sys.argv[0], config, '--work-dir', work_dir, '--launcher', 'pytorch']
        run_mmseg_tool('train.py')
