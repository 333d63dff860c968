"""Config files written as literals (utils/config_literals.py): every string, however hostile,
loads back through ``Config.fromfile`` unchanged, and nothing in it runs."""

import ast
import math
from fractions import Fraction

import numpy as np
import pytest
from mmengine.config import Config

from mmseg_cdcl.utils import dump_config
from mmseg_cdcl.utils.config_literals import comment, config_text, is_identifier, py_literal

PWNED = "__import__('os').system('touch PWNED')"
# Names from checkpoints, datasets and command lines: code after a line break, quotes,
# backslashes, mmengine's substitutions, every line break Python or str.splitlines knows,
# non-ASCII letters, control characters.
HOSTILE = [
    f'road\n{PWNED}',
    f'road\r{PWNED}',
    f'road\r\n{PWNED}',
    "cam'o",
    'say "hi"',
    '\'"',
    'back\\slash',
    'trailing\\',
    '{{_base_.x}}',
    '{{ fileDirname }}',
    '{{fileBasename}}',
    '{{$CDCL_LITERAL_TEST:default}}',
    "{{'$CDCL_LITERAL_TEST:1'}}",
    '{',
    'x\u2028y',
    'x\u2029y',
    '\x0b\x0c\x1c\x1d\x1e\x85',
    'Straße',
    '道路',
    '\x00\x1b[31m\t',
    '\ud800',
    '',
]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where PWNED would appear
    monkeypatch.setenv('CDCL_LITERAL_TEST', 'from the environment')
    return tmp_path


@pytest.mark.parametrize('text', HOSTILE)
def test_a_string_literal_is_one_line_without_braces_and_evaluates_to_the_string(text):
    literal = py_literal(text)
    assert literal.isprintable() and '{' not in literal
    assert ast.literal_eval(literal) == text
    nested = [text, (text,), {text: text, 0: None}]  # an int key: a dict literal, not dict()
    assert ast.literal_eval(py_literal(nested)) == nested


def test_hostile_strings_load_back_unchanged_and_nothing_runs(in_tmp):
    cfg = dict(
        label_space=dict(
            classes=tuple(HOSTILE),
            palette=[[i, 2 * i, 255] for i in range(len(HOSTILE))],
            mapping={name: list(reversed(HOSTILE)) + [None] for name in HOSTILE},
        ),
        model=dict(type='EncoderDecoder', names=HOSTILE, nested=[dict(a=(1,), b={1: 'x'})]),
        dataset_test_pipelines={
            name: [dict(type='LoadImageFromFile', note=name)] for name in HOSTILE
        },
    )
    dump_config(cfg, 'hostile.py', header=HOSTILE)
    text = (in_tmp / 'hostile.py').read_text(encoding='utf-8')
    # Three statements, the header's lines all comments: no line of text became code.
    assert [node.targets[0].id for node in ast.parse(text).body] == list(cfg)
    assert text.splitlines()[: len(HOSTILE)] == [comment(line).rstrip() for line in HOSTILE]
    assert Config.fromfile('hostile.py').to_dict() == cfg
    assert not (in_tmp / 'PWNED').exists()


def test_mmengines_own_dump_changes_such_strings(in_tmp):
    """Why the plugin does not write configs with ``Config.dump``: mmengine 0.10.7 quotes a dict
    key unescaped and substitutes ``{{ fileDirname }}`` inside the strings it reads back."""
    Config(dict(x=['{{ fileDirname }}'])).dump('stock.py')
    assert Config.fromfile('stock.py').x == [str(in_tmp)]
    with pytest.raises(SyntaxError, match='Failed to format the config file'):
        Config(dict(x={"cam'o": 1})).dump('stock.py')


def test_an_exported_plain_config_through_dump_config_loads_back(in_tmp):
    # What apis/export.py writes for one dataset of a CDCL model: a stock MMSeg config, and
    # the label space's classes from the checkpoint.
    plain = dict(
        default_scope='mmseg',
        model=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True,
                pad_val=0,
                seg_pad_val=255,
                size=(512, 1024),
            ),
            backbone=dict(type='ResNetV1c', depth=18, norm_cfg=dict(type='SyncBN', eps=1e-05)),
            decode_head=dict(type='PSPHead', num_classes=3, pool_scales=(1, 2, 3, 6)),
            test_cfg=dict(mode='whole'),
        ),
        label_space=dict(
            classes=['Straße', f'road\n{PWNED}', '{{_base_.x}}'],
            palette=[[128, 64, 128], [0, 0, 142], [70, 70, 70]],
            mapping={"cam'o": ['Straße', None, '{{_base_.x}}']},
        ),
        test_pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
            dict(type='PackSegInputs'),
        ],
    )
    dump_config(Config(plain), 'camo.py')  # a drop-in for Config(plain).dump('camo.py')
    assert Config.fromfile('camo.py').to_dict() == plain
    assert not (in_tmp / 'PWNED').exists()


def test_layout_fits_100_columns_one_item_a_line_and_short_items_packed():
    cfg = dict(
        label_space=dict(
            classes=tuple(f'class{i}' for i in range(12)),
            palette=[[i, 2 * i, 3 * i] for i in range(12)],
            mapping={"cam'o": ['class0', None], 'city': [None]},
        ),
        test_pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                type='PackSegInputs',
                meta_keys=('img_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor'),
            ),
        ],
    )
    assert config_text(cfg, ['Straße\n', 'plain']) == (
        "# 'Straße\\n'\n"
        '# plain\n'
        'label_space = dict(\n'
        '    classes=(\n'
        "        'class0', 'class1', 'class2', 'class3', 'class4', 'class5', 'class6', 'class7', "
        "'class8',\n"
        "        'class9', 'class10', 'class11',\n"
        '    ),\n'
        '    palette=[\n'
        '        [0, 0, 0], [1, 2, 3], [2, 4, 6], [3, 6, 9], [4, 8, 12], [5, 10, 15], '
        '[6, 12, 18],\n'
        '        [7, 14, 21], [8, 16, 24], [9, 18, 27], [10, 20, 30], [11, 22, 33],\n'
        '    ],\n'
        "    mapping={\"cam'o\": ['class0', None], 'city': [None]},\n"
        ')\n'
        'test_pipeline = [\n'
        "    dict(type='LoadImageFromFile'),\n"
        '    dict(\n'
        "        type='PackSegInputs',\n"
        "        meta_keys=('img_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor'),\n"
        '    ),\n'
        ']\n'
    )
    assert Config.fromstring(config_text(cfg), '.py').to_dict() == cfg


def test_numbers_load_back_exactly_or_are_refused(in_tmp):
    cfg = dict(
        x=[float('inf'), -float('inf'), 0.1, 1e300, -0.0, 2**70, np.int64(7), np.float32(0.5)]
    )
    dump_config(cfg, 'numbers.py')
    back = Config.fromfile('numbers.py').x
    assert back == cfg['x'] and [type(v) for v in back] == [float] * 5 + [int, int, float]
    assert math.copysign(1, back[4]) == -1
    dump_config(dict(x=float('nan')), 'nan.py')
    assert math.isnan(Config.fromfile('nan.py').x)
    with pytest.raises(TypeError, match=r'model\.x\[1\] = Fraction\(1, 3\) \(Fraction\)'):
        py_literal(dict(x=[0, Fraction(1, 3)]), 'model')
    with pytest.raises(TypeError, match=r"model\['a b'\] = b'x' \(bytes\): expected a config"):
        py_literal({'a b': b'x'}, 'model')


@pytest.mark.parametrize('key', ['class', '__x', '_base_', 'dict', "cam'o", 'ﬁsh', '1x'])
def test_a_top_level_key_a_file_cannot_assign_is_refused(key):
    with pytest.raises(ValueError, match=rf'config key {key!r}: expected a Python identifier'):
        config_text({key: 1})


def test_identifiers_are_those_python_reads_back_as_written():
    assert [is_identifier(k) for k in ('camvid', 'Straße', '道路', '_x1')] == [True] * 4
    # a keyword, NFKC-folded ('ﬁ' reads as 'fi'), not a name, not a string
    assert [is_identifier(k) for k in ('class', 'ﬁsh', "cam'o", 'a b', '', 1)] == [False] * 6
    assert py_literal({'ﬁsh': 1, 'class': 2}) == "{'ﬁsh': 1, 'class': 2}"


@pytest.mark.parametrize(
    'brk', ['\n', '\r', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\x85', '\u2028', '\u2029']
)
def test_a_comment_is_one_line_whatever_it_holds(brk):
    line = comment(f'class{brk}{PWNED}')
    assert len(line.splitlines()) == 1 and line.isprintable()
    assert ast.parse(line + '\n').body == []
    assert comment('road  same  Straße  0.50') == '# road  same  Straße  0.50'
