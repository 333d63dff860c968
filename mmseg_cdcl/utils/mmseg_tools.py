"""Run MMSeg's own command-line tools (train, test) with mmseg_cdcl's components registered."""

import gc
import os.path as osp
import runpy
import sys
from contextlib import ExitStack, contextmanager

import mmseg
import torch

from .mmengine_internals import memoized_config_formatting

# What a distributed launch needs on a machine without CUDA (gloo, CPU model wrapper).
CPU_DISTRIBUTED = [
    'env_cfg.dist_cfg.backend=gloo',
    'model_wrapper_cfg.type=MMDistributedDataParallel',
    'model_wrapper_cfg.device_ids=None',
]


def _launched_on_cpu(argv) -> bool:
    launcher = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == '--launcher'), 'none')
    return launcher != 'none' and not torch.cuda.is_available()


def _mmseg_tool(name: str) -> str:
    package = osp.dirname(mmseg.__file__)
    # pip installs ship the tools in mmseg/.mim/tools; a source checkout keeps them in tools/.
    for folder in (osp.join(package, '.mim', 'tools'), osp.join(osp.dirname(package), 'tools')):
        if osp.isfile(osp.join(folder, name)):
            return osp.join(folder, name)
    raise FileNotFoundError(
        f"MMSeg's tools/{name} is neither in {package}/.mim/tools nor in "
        'the source tree: reinstall mmsegmentation'
    )


@contextmanager
def _argv(argv: list):
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


@contextmanager
def _no_cuda_set_device():
    # mmengine 0.10.7 calls it unconditionally in a distributed launch.
    saved = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = saved


@contextmanager
def _imports_frozen():
    # The objects of the imports are never garbage: mmengine's gc.collect() at each dataset it
    # builds (BaseDataset._serialize_data, 0.4 s each with torch imported) scans only the run's.
    # Not where the caller has frozen objects itself: unfreezing would thaw those too.
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_mmseg_tool(name: str) -> None:
    """Run MMSeg's ``tools/<name>`` as ``__main__`` in this process, with its arguments.

    Without CUDA, a distributed launch (``--launcher pytorch``, as tools/dist_train.sh does)
    trains on the CPU: the gloo backend and a CPU model wrapper are added to the config options,
    and ``torch.cuda.set_device``, which mmengine 0.10.7 calls unconditionally, does nothing.
    While the tool runs, ``gc.freeze()`` keeps the garbage collector off the imports' objects
    and mmengine formats each config text once (``memoized_config_formatting``); on return or
    error ``sys.argv``, ``torch.cuda.set_device``, the collector and mmengine's formatting are
    as they were. What the tool itself changes (mmengine's default scope, loggers, the
    environment variables of ``env_cfg``) is MMSeg's, as when it runs as a command.
    """
    tool = _mmseg_tool(name)
    with ExitStack() as scoped:
        if _launched_on_cpu(sys.argv):
            scoped.enter_context(_argv(sys.argv + ['--cfg-options', *CPU_DISTRIBUTED]))
            scoped.enter_context(_no_cuda_set_device())
        scoped.enter_context(_imports_frozen())
        scoped.enter_context(memoized_config_formatting())
        runpy.run_path(tool, run_name='__main__')
