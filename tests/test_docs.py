"""README.md and docs/*.md name only configs and tools that exist, and their links resolve."""

import glob
import itertools
import os.path as osp
import re

import pytest

from conftest import REPO

PAGES = ['README.md'] + sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md'))
)
# A configs/ or tools/ path not inside another path (MMSeg's own tools are named otherwise).
PATH = re.compile(r'(?<![\w/.-])((?:configs|tools)/[\w./{},-]*[\w}])')
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
# A file a command of the page writes (`tool.py ... -o configs/mine.py`) need not exist.
OUTPUT = re.compile(r'(?:-o|--out|--output)[ =]((?:configs|tools)/[\w./-]*\w)')


def _expand(path):
    """``a{2,4}.py`` -> ``a2.py``, ``a4.py`` (shell brace expansion, as the docs write it)."""
    parts = re.split(r'\{([^{}]*)\}', path)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    return [''.join(c) for c in itertools.product(*choices)]


def named_paths(text):
    """Every configs/... and tools/... file path the text names (not folders)."""
    paths = set()
    for match in PATH.finditer(text):
        for path in _expand(match.group(1).rstrip('.,')):
            if osp.splitext(path)[1]:  # a file, not a folder such as configs/demo/
                paths.add(path)
    return sorted(paths)


def missing_paths(text, root=REPO):
    written = set(OUTPUT.findall(text))
    return [p for p in named_paths(text) if p not in written and not osp.exists(osp.join(root, p))]


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower().replace('`', '')).replace(' ', '-')


def anchors(page):
    with open(osp.join(REPO, page)) as f:
        text = re.sub(r'```.*?```', '', f.read(), flags=re.S)  # no headings in code blocks
    return {_slug(h) for h in re.findall(r'^#+ (.+)$', text, flags=re.M)}


def broken_links(page):
    """Relative links (and images) of a page whose file or heading does not exist."""
    with open(osp.join(REPO, page)) as f:
        text = f.read()
    broken = []
    for target in LINK.findall(text):
        if re.match(r'[a-z]+:', target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        resolved = osp.normpath(osp.join(osp.dirname(page), path)) if path else page
        if not osp.exists(osp.join(REPO, resolved)):
            broken.append(target)
        elif anchor and resolved.endswith('.md') and anchor not in anchors(resolved):
            broken.append(target)
    return broken


def test_the_docs_are_the_pages_readme_links():
    assert {
        'docs/usage.md',
        'docs/data_preparation.md',
        'docs/reproducing_the_paper.md',
        'docs/performance.md',
        'docs/reliability.md',
        'docs/development.md',
        'docs/demo.md',
        'docs/your_own_model.md',
        'docs/unknown_source.md',
    } <= set(PAGES)
    with open(osp.join(REPO, 'README.md')) as f:
        readme = f.read()
    assert [p for p in PAGES[1:] if f'({p})' not in readme] == []


@pytest.mark.parametrize('page', PAGES)
def test_every_named_config_and_tool_exists(page):
    with open(osp.join(REPO, page)) as f:
        text = f.read()
    assert missing_paths(text) == []


@pytest.mark.parametrize('page', PAGES)
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_a_missing_config_or_tool_is_reported():
    text = (
        'Train with `configs/cdcl_cityscapes_bdd.py` or '
        'configs/ablations/cdcl_cityscapes_bdd_interval{2,8}.py, then run tools/nope.py; '
        "MMSeg's mmsegmentation/tools/dataset_converters/cityscapes.py is not ours. "
        'See configs/demo/. `tools/export_single_dataset.py A -o configs/mine.py`, then '
        '`tools/train.py configs/mine.py`.'
    )
    assert named_paths(text) == [
        'configs/ablations/cdcl_cityscapes_bdd_interval2.py',
        'configs/ablations/cdcl_cityscapes_bdd_interval8.py',
        'configs/cdcl_cityscapes_bdd.py',
        'configs/mine.py',
        'tools/export_single_dataset.py',
        'tools/nope.py',
        'tools/train.py',
    ]
    assert missing_paths(text) == [
        'configs/ablations/cdcl_cityscapes_bdd_interval8.py',
        'tools/nope.py',
    ]


def test_github_anchors():
    assert _slug('Checkpoints under torch ≥ 2.6') == 'checkpoints-under-torch--26'
    assert _slug('The embedded demo (`make demo`)') == 'the-embedded-demo-make-demo'


def test_readme_config_builds_a_cdcl_model(tmp_path):
    """README's "Use it in your MMSeg project" config: a stock MMSeg config converted."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from mmseg_cdcl.models.layers import DSBN

    with open(osp.join(REPO, 'README.md')) as f:
        [block] = re.findall(r'```python\n(.*?)```', f.read(), flags=re.S)
    (tmp_path / 'config.py').write_text(block)
    cfg = Config.fromfile(str(tmp_path / 'config.py'))
    cfg.model.pretrained = None
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'CDCLEncoderDecoder'
    assert list(model.dataset_names) == ['cityscapes', 'camvid']
    assert type(model.backbone).__name__ == 'ResNetV1c' and model.backbone.depth == 18
    assert isinstance(model.backbone.stem[1], DSBN) and model.backbone.stem[1].num_datasets == 2
    assert [c.out_channels for c in model.decode_head.conv_seg] == [19, 11]
    assert [c.out_channels for c in model.auxiliary_head.conv_seg] == [19, 11]
