"""A label space learned from a CDCL model's heads: the relations read from hand-made confusions,
the confusions counted from the model, the written file, and the refusals."""

import ast
import json
import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from conftest import REPO
from mmseg_cdcl.evaluation import learn_label_space
from mmseg_cdcl.evaluation.functional.class_relations import (
    Relation,
    class_relations,
    label_space_from_relations,
)
from mmseg_cdcl.evaluation.label_space_learning import (
    relations_table,
    universal_label_space,
    write_label_space,
)
from mmseg_cdcl.models.utils import LabelSpace
from mmseg_cdcl.testing import unformatted

CITYSCAPES_TO_CAMVID = os.path.join(
    REPO, 'configs', '_base_', 'label_spaces', 'cityscapes_to_camvid.py'
)


def test_same_classes_are_one_to_one():
    confusion = np.array([[8, 1, 1], [0, 9, 1], [1, 0, 9]])
    relations = class_relations(confusion, confusion)
    assert relations == [
        Relation(0, 0, 'same', 0.8, 0.8),
        Relation(1, 1, 'same', 0.9, 0.9),
        Relation(2, 2, 'same', 0.9, 0.9),
    ]
    learned = label_space_from_relations(dict(a=('x', 'y', 'z'), b=('X', 'Y', 'Z')), relations)
    assert learned['label_space'] == dict(
        classes=('X', 'Y', 'Z'), mapping=dict(a=['X', 'Y', 'Z'], b=['X', 'Y', 'Z'])
    )
    assert learned['finer'] == 'a' and learned['universal'] == ['x', 'y', 'z']


def test_finer_classes_map_into_coarser_and_an_unconfirmed_class_is_unrelated():
    # a: car, truck, road, train; b: vehicle, road. b's head calls trucks vehicles (0.8) and
    # a's head finds trucks among b's vehicles (0.25): truck is inside vehicle. b's head calls
    # trains vehicles too (0.7), but b labels no train: a's head never says train on b's
    # images, so train relates to nothing.
    ab = np.array([[90, 10], [80, 20], [5, 95], [70, 30]])
    ba = np.array([[70, 25, 5, 0], [0, 0, 100, 0]])
    relations = class_relations(ab, ba)
    assert relations == [
        Relation(0, 0, 'same', 0.9, 0.7),
        Relation(1, 0, 'inside', 0.8, 0.25),
        Relation(2, 1, 'same', 0.95, 1.0),
    ]
    classes = dict(a=('car', 'truck', 'road', 'train'), b=('vehicle', 'road'))
    learned = label_space_from_relations(
        classes,
        relations,
        dict(a=[[0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 0, 4]], b=[[1, 0, 0], [2, 0, 0]]),
    )
    assert learned['label_space'] == dict(
        classes=('vehicle', 'road'),
        palette=[[1, 0, 0], [2, 0, 0]],
        mapping=dict(a=['vehicle', 'vehicle', 'road', None], b=['vehicle', 'road']),
    )
    assert learned['finer'] == 'a'
    assert learned['unions']['b'] == dict(vehicle=['car', 'truck'], road=['road'])
    # The coarser taxonomy given first: the same relations seen from the other side.
    flipped = class_relations(ba, ab)
    assert [(r.a, r.b, r.kind) for r in flipped] == [
        (0, 0, 'same'),
        (0, 1, 'contains'),
        (1, 2, 'same'),
    ]
    assert label_space_from_relations(dict(b=classes['b'], a=classes['a']), flipped)['label_space'][
        'mapping'
    ] == dict(b=['vehicle', 'road'], a=['vehicle', 'vehicle', 'road', None])


def test_neither_coarser_gives_universal_classes():
    # a: AB, C; b: A, BC (equal areas of A, B, C): a's AB holds b's A and half of b's BC.
    ab = np.array([[50, 50], [0, 100]])
    ba = np.array([[100, 0], [50, 50]])
    relations = class_relations(ab, ba)
    assert relations == [
        Relation(0, 0, 'contains', 0.5, 1.0),
        Relation(0, 1, 'overlap', 0.5, 0.5),
        Relation(1, 1, 'inside', 1.0, 0.5),
    ]
    learned = label_space_from_relations(dict(a=('AB', 'C'), b=('A', 'BC')), relations)
    assert learned['finer'] is None
    assert learned['universal'] == ['A', 'AB ∩ BC', 'C']
    assert learned['unions'] == dict(
        a=dict(AB=['A', 'AB ∩ BC'], C=['C']), b=dict(A=['A'], BC=['AB ∩ BC', 'C'])
    )
    # The finest space both map into: one class, since AB, BC chain everything together.
    assert learned['label_space'] == dict(
        classes=('AB+C',), mapping=dict(a=['AB+C', 'AB+C'], b=['AB+C', 'AB+C'])
    )
    # Its universal form: each dataset's classes as unions of the universal classes, a label
    # space of a universal head; a third dataset of a's classes shares a's mapping.
    classes = dict(a=('AB', 'C'), b=('A', 'BC'), c=('AB', 'C'))
    palettes = dict(a=[[1, 1, 1], [2, 2, 2]], b=[[3, 3, 3], [4, 4, 4]])
    space = universal_label_space(
        learned, dict(a=classes['a'], b=classes['b']), palettes, 'abc', classes
    )
    assert space == dict(
        classes=('A', 'AB ∩ BC', 'C'),
        mapping=dict(
            a=[['A', 'AB ∩ BC'], ['C']], b=[['A'], ['AB ∩ BC', 'C']], c=[['A', 'AB ∩ BC'], ['C']]
        ),
    )  # 'AB ∩ BC' is no class alone: no palette
    universal = LabelSpace(dataset_names='abc', num_classes=[2, 2, 2], universal=True, **space)
    assert universal.union_ids(1) == [(0,), (1, 2)]
    palettes['a'] = None
    assert 'palette' not in universal_label_space(
        learned, dict(a=classes['a'], b=classes['b']), palettes, 'abc', classes
    )


def test_unrelated_classes_and_bad_thresholds():
    assert class_relations(np.array([[10, 0], [0, 0]]), np.array([[0, 0], [0, 10]])) == []
    with pytest.raises(ValueError, match=r'inside=0.4.*expected 1/2 < inside'):
        class_relations(np.eye(2), np.eye(2), inside=0.4)
    with pytest.raises(ValueError, match=r'confusion_ab \(2, 3\) and confusion_ba \(2, 3\)'):
        class_relations(np.ones((2, 3)), np.ones((2, 3)))


PWNED = "__import__('os').system('touch PWNED')"


def test_written_file_holds_hostile_names_as_literals(tmp_path, monkeypatch):
    """Class names come from the checkpoint, dataset names from the config, paths from the
    command line: whatever they hold, the file loads back with them and runs nothing."""
    monkeypatch.chdir(tmp_path)
    hostile = [
        f'road\n{PWNED}',
        f'car\r{PWNED}',
        "cam'o",
        'say "hi"',
        'back\\slash',
        '{{_base_.x}}',
        '{{ fileDirname }}',
        'x\u2028y',
        'Straße',
        '道路',
        'trailing\\',
    ]
    a, b = "cam'o", '{{ fileDirname }}'
    classes = {a: ['road', *hostile], b: ['sidewalk', *hostile]}
    confusion = np.eye(len(hostile) + 1, dtype=np.int64) * 10
    relations = class_relations(confusion, confusion)
    learned = label_space_from_relations(
        classes, relations, {x: [[i, i, i] for i in range(len(hostile) + 1)] for x in (a, b)}
    )
    summary = dict(
        config=f'config\n{PWNED}.py',
        checkpoint='{{ fileDirname }}/iter_2.pth',
        dataloader='val',
        bn='image',
        images={a: 1, b: 1},
        classes=classes,
        finer=learned['finer'],
        label_space=learned['label_space'],
        relations=dict(
            image=[dict(r._asdict(), a=classes[a][r.a], b=classes[b][r.b]) for r in relations]
        ),
        confusions=dict(image={f'{a}->{b}': confusion.tolist(), f'{b}->{a}': confusion.tolist()}),
    )
    write_label_space('learned/space.py', summary)
    text = (tmp_path / 'learned' / 'space.py').read_text(encoding='utf-8')
    assert [node.targets[0].id for node in ast.parse(text).body] == ['label_space']
    space = Config.fromfile('learned/space.py').label_space.to_dict()
    assert space == dict(
        classes=tuple(classes[b]),
        palette=[[i, i, i] for i in range(len(hostile) + 1)],
        mapping={a: classes[b], b: classes[b]},
    )
    assert list(space['mapping']) == [a, b]
    assert not (tmp_path / 'PWNED').exists()
    # The header is the relations table; a row of plain names as it is, the others literals.
    table = relations_table(summary)
    assert f'# {table[1]}' in text.splitlines() and table[1].startswith('road ')
    assert f'# {table[2]!r}'.replace('{', '\\x7b') in text.splitlines()
    assert json.load(open('learned/space.json', encoding='utf-8'))['classes'] == classes


@pytest.fixture
def in_data(data_cwd, monkeypatch):
    monkeypatch.chdir(data_cwd)  # the configs' data/ roots


@pytest.mark.slow
def test_learned_label_space_loads_as_label_space(trained_cdcl, in_data, tmp_path):
    config, checkpoint = str(trained_cdcl / 'config.py'), str(trained_cdcl / 'iter_2.pth')
    out = str(tmp_path / 'learned' / 'space.py')
    summary = learn_label_space(config, checkpoint, out, max_images=1, compare=CITYSCAPES_TO_CAMVID)
    space = Config.fromfile(out).label_space
    assert dict(space.to_dict(), classes=list(space.classes)) == json.loads(
        json.dumps(summary['label_space'])
    )
    assert list(space.mapping) == ['cityscapes', 'camvid']
    assert [len(space.mapping.cityscapes), len(space.mapping.camvid)] == [19, 11]
    cfg = Config.fromfile(config)
    cfg.model.label_space = space
    model = MODELS.build(cfg.model)
    model.set_dataset_classes({name: summary['classes'][name] for name in summary['classes']})
    assert model.label_space.classes == tuple(space.classes)
    # Its universal form, in the same file: a universal head's label space.
    universal = Config.fromfile(out).universal_label_space
    assert dict(universal.to_dict(), classes=list(universal.classes)) == json.loads(
        json.dumps(summary['universal_label_space'])
    )
    # assigned, not update()d: ConfigDict.update merges, and the learned space's palette (of
    # fewer classes) would stay where the universal space states none
    cfg.model.label_space, cfg.model.universal_head = universal, True
    model = MODELS.build(cfg.model)
    assert model.decode_head.conv_seg.out_channels == len(universal.classes)
    assert model.label_space.classes == tuple(universal.classes) == tuple(summary['universal'])
    evidence = json.load(open(str(tmp_path / 'learned' / 'space.json')))
    assert evidence['images'] == dict(cityscapes=1, camvid=1)
    assert np.array(evidence['confusions']['image']['cityscapes->camvid']).shape == (19, 11)
    assert set(evidence['miou']['camvid']) == {'own', 'learned', 'compare'}
    # The hand-written space ignores Cityscapes' train only: it keeps every other labelled pixel.
    own = np.array(evidence['confusions']['image']['cityscapes->cityscapes']).sum(1)
    assert evidence['kept']['cityscapes']['compare'] == (own.sum() - own[16]) / own.sum()
    assert evidence['kept']['camvid']['compare'] == 1.0
    # The hand-written space maps camvid's classes to themselves.
    assert [
        r['compare'] for r in evidence['compare']['classes'] if r['dataset'] == 'camvid'
    ] == summary['classes']['camvid']


def _saved(model, path, stated=True):
    state = model.state_dict()
    torch.save(dict(state_dict=state if stated else OrderedDict(state.items()), meta={}), str(path))
    return str(path)


@pytest.mark.slow
def test_bad_inputs_are_refused_before_writing(trained_cdcl, in_data, tmp_path):
    config, checkpoint = str(trained_cdcl / 'config.py'), str(trained_cdcl / 'iter_2.pth')
    out = tmp_path / 'space.py'
    # Two datasets of Cityscapes' classes: one label space, nothing to learn.
    cfg = Config.fromfile(config)
    cfg.model.dataset_names = ['cityscapes', 'bdd100k']
    cityscapes = cfg.val_dataloader.dataset.datasets.cityscapes
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.datasets = dict(cityscapes=cityscapes, bdd100k=cityscapes)
    for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
        head.num_classes = [19, 19]
    shared = str(tmp_path / 'shared.py')
    unformatted(cfg).dump(shared)
    shared_ckpt = _saved(MODELS.build(cfg.model), tmp_path / 'shared.pth')
    with pytest.raises(
        ValueError,
        match=r"\['cityscapes', 'bdd100k'\] have 1 label space.*"
        'these share one: there is nothing to learn',
    ):
        learn_label_space(shared, shared_ckpt, str(out))
    # A checkpoint of another model, of no model's datasets, of another architecture.
    with pytest.raises(
        ValueError,
        match=rf'{shared_ckpt} is not a checkpoint of the model of '
        rf"{config}: it states datasets \['cityscapes', 'bdd100k'\], the model has",
    ):
        learn_label_space(config, shared_ckpt, str(out))
    model = MODELS.build(Config.fromfile(config).model)
    unstated = _saved(model, tmp_path / 'plain.pth', stated=False)
    with pytest.raises(ValueError, match='states no datasets'):
        learn_label_space(config, unstated, str(out))
    state = model.state_dict()
    state['backbone.extra.weight'] = torch.zeros(1)
    extra = str(tmp_path / 'extra.pth')
    torch.save(dict(state_dict=state), extra)
    with pytest.raises(ValueError, match=rf'(?s){extra} does not fit the model.*backbone.extra'):
        learn_label_space(config, extra, str(out))
    with pytest.raises(ValueError, match=r'--out .*space.txt: expected a .py file'):
        learn_label_space(config, checkpoint, str(tmp_path / 'space.txt'))
    with pytest.raises(ValueError, match=r"unknown thresholds \['insde'\]"):
        learn_label_space(config, checkpoint, str(out), insde=0.7)
    universal = os.path.join(REPO, 'configs', 'demo', 'cdcl_universal_cityscapes_camvid.py')
    with pytest.raises(
        ValueError, match=rf'{universal}: model.universal_head=True: a universal model predicts'
    ):
        learn_label_space(universal, checkpoint, str(out))
    assert not out.exists() and not (tmp_path / 'space.json').exists()


@pytest.mark.slow
def test_command_line(trained_cdcl, data_cwd, tmp_path):
    out = tmp_path / 'space.py'
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, 'tools', 'analysis', 'learn_label_space.py'),
            str(trained_cdcl / 'config.py'),
            str(trained_cdcl / 'iter_2.pth'),
            '--out',
            str(out),
            '--max-images',
            '1',
            '--compare',
            CITYSCAPES_TO_CAMVID,
        ],
        cwd=data_cwd,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    # A 2-iteration model's relations are noise: the table's rows are those of either dataset.
    first, *header = lines[0].split()
    assert first in ('cityscapes', 'camvid') and header == [
        'class',
        'relation',
        'camvid' if first == 'cityscapes' else 'cityscapes',
        'class',
        'share',
        '->',
        'share',
        '<-',
        'learned',
        'hand-written',
        'agree',
    ]
    assert lines[-1] == f'wrote {out} (evidence: {tmp_path / "space.json"})' and out.exists()
    assert lines[-2].startswith(
        "mIoU (%) of each dataset's own branch (share of its labelled pixels kept): cityscapes own "
    )
    assert lines[-3].startswith('with --bn head: ')
    assert Config.fromfile(str(out)).label_space.mapping.keys() == {'cityscapes', 'camvid'}
