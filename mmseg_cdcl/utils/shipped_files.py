"""The configs and tools shipped with mmseg-cdcl, running a tool as a command, and the command
line that runs one where the user is.

A wheel ships configs/ and tools/ in ``mmseg_cdcl/.mim/``, where OpenMMLab packages ship theirs
(``mim run``/``mim train`` look there); a clone (editable install) has them beside the package.
"""

import os
import os.path as osp
import runpy
import shutil
import subprocess
import sys
from typing import Dict, List

PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))
# A file each of configs/ and tools/ has, so an unrelated folder named configs/ is not taken.
_MARKERS = ('configs/cdcl_cityscapes_bdd.py', 'tools/train.py')
# Tools of the clone's development environment (.venv and requirements/lock.txt): no commands, and
# setup.py leaves them out of the wheel.
CLONE_ONLY = ('setup_env.sh', 'env_lock.py')


def shipped_root() -> str:
    """The folder holding configs/ and tools/: ``mmseg_cdcl/.mim`` of an installed wheel, else
    the clone the package is imported from."""
    candidates = (osp.join(PACKAGE, '.mim'), osp.dirname(PACKAGE))
    for root in candidates:
        if all(osp.isfile(osp.join(root, marker)) for marker in _MARKERS):
            return root
    raise FileNotFoundError(
        f'neither {candidates[0]} (an installed wheel) nor {candidates[1]} (a clone) holds '
        f'{" and ".join(_MARKERS)}: reinstall mmseg-cdcl (pip install mmseg-cdcl, or '
        'pip install -e . in a clone)'
    )


def config_path(relative: str) -> str:
    """The shipped ``configs/<relative>`` (e.g. ``'_base_/datasets/camvid.py'``)."""
    path = osp.join(shipped_root(), 'configs', relative)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: mmseg-cdcl ships no configs/{relative}')
    return path


def tool_commands() -> Dict[str, str]:
    """Each shipped tool by command name (its path under tools/ without the extension, e.g.
    ``train``, ``analysis/bn_statistics``, ``dist_train``) -> its file."""
    tools = osp.join(shipped_root(), 'tools')
    commands = {}
    for folder, dirs, files in os.walk(tools):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        for name in sorted(files):
            stem, ext = osp.splitext(name)
            if ext in ('.py', '.sh') and name not in CLONE_ONLY:
                rel = osp.relpath(osp.join(folder, stem), tools).replace(os.sep, '/')
                commands[rel] = osp.join(folder, name)
    return commands


# Options whose value a tool writes: never redirected to the installed files.
OUTPUT_OPTIONS = ('-o', '--out', '--output', '--out-dir', '--work-dir', '--show-dir')


def shipped_args(args: List[str]) -> List[str]:
    """``args`` with each ``configs/...`` path that names no file from the current folder but a
    shipped one replaced by the shipped file (also after ``NAME=``, as in ``--dataset``), so the
    README's commands run as written; each replacement is said on stderr. The value of an
    output option (``OUTPUT_OPTIONS``) is left as it is."""
    root, out = shipped_root(), []
    for i, arg in enumerate(args):
        name, sep, path = arg.rpartition('=')
        shipped = osp.join(root, path)
        written = (i > 0 and args[i - 1] in OUTPUT_OPTIONS) or name in OUTPUT_OPTIONS
        if (
            path.startswith('configs/')
            and not written
            and not osp.exists(path)
            and osp.isfile(shipped)
        ):
            print(f'{path}: not in {os.getcwd()}, using the installed {shipped}', file=sys.stderr)
            arg = name + sep + shipped
        out.append(arg)
    return out


def run_tool(command: str, args: List[str]) -> int:
    """Run the shipped ``tools/<command>`` with ``args`` as ``python tools/<command>.py`` (or
    ``bash tools/<command>.sh``) would from a clone, and return its exit status.

    Args:
        command (str): A name from :func:`tool_commands`.
        args (list[str]): Its arguments; ``configs/...`` paths go through :func:`shipped_args`.
    """
    commands = tool_commands()
    if command not in commands:
        raise KeyError(f'no command {command!r}; the commands are {", ".join(commands)}')
    path, args = commands[command], shipped_args(args)
    if path.endswith('.sh'):
        # Its torchrun and python are this environment's, activated or not.
        bin_dir = osp.dirname(sys.executable)
        env = dict(os.environ, PATH=os.pathsep.join([bin_dir, os.environ.get('PATH', '')]))
        return subprocess.call(['bash', path, *args], env=env)
    # As `python path args`: the script's folder first on sys.path, the arguments in sys.argv;
    # run in this process, which has imported torch and MMSeg already.
    sys.argv = [path, *args]
    sys.path[0] = osp.dirname(path)
    try:
        runpy.run_path(path, run_name='__main__')
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def _beside_python(program: str) -> bool:
    """Whether ``program`` on PATH is the one of the running interpreter's environment."""
    found = shutil.which(program)
    return found is not None and osp.dirname(osp.abspath(found)) == osp.dirname(sys.executable)


def tool_command(command: str) -> str:
    """The command line that runs the tool ``command`` from the current folder, for the messages
    that tell a person what to run next: in the clone's root ``python tools/train.py``, elsewhere
    the console script ``mmseg-cdcl train``; the running interpreter's path instead of
    ``python`` (and of ``mmseg-cdcl``: ``<python> -m mmseg_cdcl``) where PATH finds another.

    Args:
        command (str): A name from :func:`tool_commands`, e.g. ``'train'``.
    """
    path = tool_commands()[command]
    python = sys.executable
    if _beside_python('python'):
        python = 'python'
    elif not osp.relpath(python).startswith('..'):  # .venv/bin/python in the clone's root
        python = osp.relpath(python)
    if osp.samefile(shipped_root(), os.getcwd()):
        return f'{python} {osp.relpath(path)}'
    if _beside_python('mmseg-cdcl'):
        return f'mmseg-cdcl {command}'
    return f'{python} -m mmseg_cdcl {command}'
