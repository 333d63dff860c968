"""Run a tool of mmseg-cdcl from the installed package, without the clone.

    python -m mmseg_cdcl COMMAND [ARGS ...]     (or: mmseg-cdcl COMMAND [ARGS ...])

runs tools/COMMAND.py (or .sh) with ARGS as ``python tools/COMMAND.py ARGS`` does in a clone,
e.g. ``python -m mmseg_cdcl train configs/cdcl_cityscapes_bdd.py``. A ``configs/...`` argument
that is not in the current folder is the installed config of that path. Without a command it
lists the commands and the folder of the installed configs.
"""

import sys

from mmseg_cdcl.utils.shipped_files import run_tool, shipped_root, tool_commands


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(
            __doc__.strip()
            + '\n\ncommands: '
            + ', '.join(tool_commands())
            + f'\nconfigs and tools: {shipped_root()}'
        )
        return
    try:
        sys.exit(run_tool(argv[0], argv[1:]))
    except KeyError as e:
        sys.exit(f'python -m mmseg_cdcl: {e.args[0]}')


if __name__ == '__main__':
    main()
