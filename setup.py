import shutil
from pathlib import Path
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
# What a user of the installed package needs besides the code, shipped where OpenMMLab packages
# ship theirs and mim looks for them (MMSeg's wheel: mmseg/.mim/configs, mmseg/.mim/tools).
MIM_FOLDERS = ('configs', 'tools')
# tools/setup_env.sh and env_lock.py build and check the clone's .venv against its
# requirements/lock.txt: nothing an installed package can run (mmseg_cdcl.utils.shipped_files'
# CLONE_ONLY; tests/test_tools/test_wheel.py checks the wheel leaves exactly these out).
MIM_EXCLUDE = ('__pycache__', '*.pyc', 'setup_env.sh', 'env_lock.py')


class BuildWithMimFiles(build_py):
    """build_py that copies configs/ and tools/ into the built package's ``mmseg_cdcl/.mim/``.

    The copy goes to the build folder, never into the clone, so the clone keeps one copy of each
    file (MMSeg's setup.py copies into its source tree). An editable install does not copy: its
    package is the clone's, and ``mmseg_cdcl.utils.shipped_root`` finds configs/ and tools/ there.
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        for name in MIM_FOLDERS:
            target = Path(self.build_lib) / 'mmseg_cdcl' / '.mim' / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(HERE / name, target, ignore=shutil.ignore_patterns(*MIM_EXCLUDE))


def read_requirements(name):
    """Requirement lines of ``requirements/<name>.txt``, comments dropped."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [line.split('#')[0].strip() for line in lines if line.split('#')[0].strip()]


version = {}
exec((HERE / 'mmseg_cdcl' / 'version.py').read_text(), version)

setup(
    name='mmseg-cdcl',
    version=version['__version__'],
    description='Cross-Dataset Collaborative Learning (CDCL) for MMSegmentation 1.x',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['mmseg_cdcl', 'mmseg_cdcl.*']),
    # torch is not listed: like MMSeg, the plugin uses whatever torch the environment has.
    install_requires=read_requirements('runtime'),
    extras_require={'tests': read_requirements('tests')},
    cmdclass={'build_py': BuildWithMimFiles},
    # `mmseg-cdcl COMMAND ...` = `python -m mmseg_cdcl COMMAND ...`: runs tools/COMMAND.py.
    entry_points={'console_scripts': ['mmseg-cdcl = mmseg_cdcl.__main__:main']},
    zip_safe=False,
)
