"""Run MMSeg's own command-line tools (train, test) with mmseg_cdcl's components registered."""

import gc
import os.path as osp
import runpy
import sys

import mmseg
import torch

# What a distributed launch needs on a machine without CUDA (gloo, CPU model wrapper).
CPU_DISTRIBUTED = [
    'env_cfg.dist_cfg.backend=gloo',
    'model_wrapper_cfg.type=MMDistributedDataParallel',
    'model_wrapper_cfg.device_ids=None',
]


def _launched_on_cpu(argv) -> bool:
    launcher = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == '--launcher'), 'none')
    return launcher != 'none' and not torch.cuda.is_available()


def run_mmseg_tool(name: str) -> None:
    """Run MMSeg's ``tools/<name>`` as ``__main__`` in this process, with its arguments.

    Without CUDA, a distributed launch (``--launcher pytorch``, as tools/dist_train.sh does)
    trains on the CPU: the gloo backend and a CPU model wrapper are added to the config options,
    and ``torch.cuda.set_device``, which mmengine 0.10.7 calls unconditionally, does nothing.
    """
    if _launched_on_cpu(sys.argv):
        sys.argv += ['--cfg-options', *CPU_DISTRIBUTED]
        torch.cuda.set_device = lambda device: None
    # The objects of the imports are never garbage: mmengine's gc.collect() at each dataset it
    # builds (BaseDataset._serialize_data, 0.4 s each with torch imported) scans only the run's.
    gc.freeze()
    package = osp.dirname(mmseg.__file__)
    # pip installs ship the tools in mmseg/.mim/tools; a source checkout keeps them in tools/.
    for folder in (osp.join(package, '.mim', 'tools'), osp.join(osp.dirname(package), 'tools')):
        if osp.isfile(osp.join(folder, name)):
            runpy.run_path(osp.join(folder, name), run_name='__main__')
            return
    raise FileNotFoundError(
        f"MMSeg's tools/{name} is neither in {package}/.mim/tools nor in "
        'the source tree: reinstall mmsegmentation'
    )
