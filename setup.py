from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


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
    zip_safe=False,
)
