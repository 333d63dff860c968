"""Run MMSeg's own command-line tools (train, test) with mmseg_cdcl's components registered."""
import os.path as osp
import runpy

import mmseg


def run_mmseg_tool(name: str) -> None:
    """Run MMSeg's ``tools/<name>`` as ``__main__`` in this process, with its arguments."""
    package = osp.dirname(mmseg.__file__)
    # pip installs ship the tools in mmseg/.mim/tools; a source checkout keeps them in tools/.
    for folder in (osp.join(package, '.mim', 'tools'), osp.join(osp.dirname(package), 'tools')):
        if osp.isfile(osp.join(folder, name)):
            runpy.run_path(osp.join(folder, name), run_name='__main__')
            return
    raise FileNotFoundError(f"MMSeg's tools/{name} is neither in {package}/.mim/tools nor in "
                            'the source tree: reinstall mmsegmentation')
