"""A label space learned after training from the per-dataset heads of a CDCL model.

``tools/analysis/learn_label_space.py`` is the command line of :func:`learn_label_space`. As
UniDet (Zhou et al., arXiv 2102.13086) and Ma et al. (arXiv 2407.10534) do, every dataset's head
predicts every dataset's labelled images: each image once with its own dataset's DSBN branch
(``bn='image'``) and once with the head's dataset's (``bn='head'``); the pixels are counted per
(label, prediction). :func:`~.functional.class_relations.class_relations` reads the relation of
the classes from these confusions (the same, one inside another, overlapping, unrelated) and
:func:`~.functional.class_relations.label_space_from_relations` the label space: the finer
taxonomy mapped into the coarser one, or, where neither is coarser, the groups of related
classes, with the universal classes (Bevandić & Šegvić, arXiv 2108.11224) stated.

Writes the label space in the shipped form (``configs/_base_/label_spaces/*.py``, used as
``model=dict(label_space=label_space)``), its universal form (``universal_label_space``: the
universal classes, each dataset's classes as unions of them, for
``model=dict(label_space=universal_label_space, universal_head=True)``) and beside it
``<out>.json``: the confusions of both
BN choices, each related pair's shares, the universal classes, and each dataset's mIoU with its
own branch in its own classes and in the learned space (and in ``compare``'s, a label space
file such as the hand-written one, with a class-by-class comparison).

Example:
    >>> from mmseg_cdcl.evaluation import learn_label_space
    >>> summary = learn_label_space('configs/demo/cdcl_cityscapes_camvid.py',
    ...                             'work_dirs/cdcl/iter_240.pth', 'learned_label_space.py')
"""

import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.registry import MODELS

from ..apis.inference import dataset_metainfo
from ..models.utils import LabelSpace
from ..models.utils.checkpoint_datasets import state_datasets_from_meta
from ..models.utils.checkpoint_datasets import stated as stated_statement
from ..utils.config_literals import dump_config
from ..utils.mmengine_internals import load_checkpoint_to_model
from ..utils.safe_checkpoint import mmengine_checkpoints_allowed
from .cross_dataset_confusion import (
    BN_CHOICES,
    cross_dataset_confusions,
    kept_pixels,
    label_space_mious,
    miou,
)
from .functional.class_relations import (
    THRESHOLDS,
    class_relations,
    label_space_from_relations,
    row_shares,
)


def load_cdcl_model(config: str, checkpoint: str, device: str = 'cpu'):
    """The config's CDCL model (without a ``label_space``: each head predicts its classes) with
    the checkpoint's weights, and the class names and palettes of its datasets.

    Raises:
        ValueError: not a CDCL config of per-dataset heads (a universal model's one classifier
            has no dataset classes to relate), or a checkpoint that is not of its model
            (another architecture, other datasets, no datasets stated); names the file.
    """
    cfg = Config.fromfile(config)
    names = list(cfg.get('model', {}).get('dataset_names') or [])
    if len(names) < 2:
        raise ValueError(
            f'{config}: model.dataset_names={names}: expected a CDCL model of '
            'several datasets, one head per dataset'
        )
    if cfg.model.get('universal_head'):
        raise ValueError(
            f'{config}: model.universal_head=True: a universal model predicts the universal '
            "classes of its label_space with one classifier, so no dataset's classes are left "
            'to relate; learn a label space from a CDCL model of per-dataset heads (the '
            'default) and train the universal model on it (docs/universal_label_space.md)'
        )
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.pop('label_space', None)
    cfg.model.pop('default_dataset', None)
    model = MODELS.build(cfg.model)
    with mmengine_checkpoints_allowed():
        ckpt = state_datasets_from_meta(
            CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu', logger='silent'),
            checkpoint,
        )
    state = ckpt.get('state_dict', ckpt)
    stated = (stated_statement(state) or {}).get('dataset_names')  # DDP's, EMA's too
    if stated is None or sorted(stated) != sorted(names):
        raise ValueError(
            f'{checkpoint} is not a checkpoint of the model of {config}: it states '
            + (
                'no datasets (not a CDCL checkpoint)'
                if stated is None
                else f'datasets {list(stated)}'
            )
            + f', the model has {names}'
        )
    try:
        load_checkpoint_to_model(model, ckpt, strict=True)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f'{checkpoint} does not fit the model of {config}: {e}') from e
    meta = ((ckpt.get('meta') or {}).get('dataset_meta') or {}).get('datasets') or {}
    metas = {name: meta.get(name) or dataset_metainfo(cfg, name) or {} for name in names}
    classes = {name: tuple(m['classes']) if m.get('classes') else None for name, m in metas.items()}
    missing = [name for name, c in classes.items() if c is None]
    if missing:
        raise ValueError(
            f'no class names for datasets {missing}: neither {checkpoint} nor '
            f'the dataloaders of {config} state them'
        )
    model.set_dataset_classes(classes)
    palettes = {name: m.get('palette') for name, m in metas.items()}
    return model.to(device).eval(), cfg, classes, palettes


def two_label_spaces(classes: Dict[str, Sequence[str]]) -> List[str]:
    """The first dataset of each of the two label spaces among the datasets' classes.

    Raises:
        ValueError: the datasets share one label space, or have more than two.
    """
    spaces = {}
    for name, names in classes.items():
        spaces.setdefault(tuple(names), []).append(name)
    if len(spaces) != 2:
        raise ValueError(
            f'the datasets {list(classes)} have {len(spaces)} label space(s) '
            f'({"; ".join(f"{v}: {len(k)} classes" for k, v in spaces.items())}): learning '
            'relates exactly two, '
            + (
                'and these share one: there is nothing to learn'
                if len(spaces) == 1
                else 'give a model of two'
            )
        )
    return [group[0] for group in spaces.values()]


def learn_label_space(
    config: str,
    checkpoint: str,
    out_file: str,
    dataloader: str = 'val',
    bn: str = 'image',
    max_images: Optional[int] = None,
    compare: Optional[str] = None,
    device: str = 'cpu',
    **thresholds,
) -> dict:
    """Learn, write and return the label space of a CDCL model's two label spaces.

    Args:
        config (str): The CDCL model's config.
        checkpoint (str): Its checkpoint.
        out_file (str): The label space file (``.py``); the evidence goes to ``.json`` beside.
        dataloader (str): The config's ``'val'`` or ``'test'`` dataloader, whose labelled
            images are predicted. Defaults to 'val'.
        bn (str): The BN choice whose confusions decide (:data:`BN_CHOICES`); both are
            measured and saved. Defaults to 'image'.
        max_images (int, optional): Images per dataset. Defaults to all.
        compare (str, optional): A label space file (e.g. the hand-written one) to compare
            with, class by class and by mIoU; mappings of datasets the model lacks are left out.
        device (str): Defaults to 'cpu'.
        **thresholds: ``inside``, ``confirm``, ``overlap`` of :func:`class_relations`.

    Returns:
        dict: The summary written to the JSON file.

    Raises:
        ValueError: before anything is written, for a config that is not of a CDCL model of
            two label spaces, a checkpoint of another model, a bad ``out_file``, ``bn`` or
            ``compare``.
    """
    if not out_file.endswith('.py'):
        raise ValueError(f'--out {out_file}: expected a .py file (a config with label_space)')
    if bn not in BN_CHOICES or dataloader not in ('val', 'test'):
        raise ValueError(
            f'bn={bn!r}, dataloader={dataloader!r}: expected bn in {BN_CHOICES} '
            "and dataloader 'val' or 'test'"
        )
    unknown = sorted(set(thresholds) - set(THRESHOLDS))
    if unknown:
        raise ValueError(f'unknown thresholds {unknown}: expected some of {list(THRESHOLDS)}')
    thresholds = dict(THRESHOLDS, **thresholds)
    model, cfg, classes, palettes = load_cdcl_model(config, checkpoint, device)
    a, b = two_label_spaces(classes)
    spaces = {}
    if compare is not None:
        spaces['compare'] = _label_space(model, classes, _read_label_space(compare, model))
    loader = Runner.build_dataloader(cfg.get(f'{dataloader}_dataloader'))
    ia, ib = model.dataset_index(a), model.dataset_index(b)
    measured = cross_dataset_confusions(model, loader, (ia, ib), max_images)
    evidence = {
        choice: {
            (x, y): measured['confusions'][choice][i][j]
            for x, i in ((a, ia), (b, ib))
            for y, j in ((a, ia), (b, ib))
        }
        for choice in BN_CHOICES
    }
    relations = {
        choice: class_relations(c[(a, b)], c[(b, a)], **thresholds)
        for choice, c in evidence.items()
    }
    learned = label_space_from_relations(
        {a: classes[a], b: classes[b]}, relations[bn], {a: palettes[a], b: palettes[b]}
    )
    space = dict(learned['label_space'])
    finer = learned['finer']
    for name in model.dataset_names:  # datasets of the same classes share a mapping
        if name not in (a, b):
            space['mapping'][name] = space['mapping'][a if classes[name] == classes[a] else b]
    space['mapping'] = {name: space['mapping'][name] for name in model.dataset_names}
    universal = universal_label_space(
        learned, {x: classes[x] for x in (a, b)}, palettes, model.dataset_names, classes
    )
    spaces = dict(learned=_label_space(model, classes, space), **spaces)
    mious = label_space_mious(model, loader, (ia, ib), spaces, max_images)
    own = {x: miou(evidence['image'][(x, x)]) for x in (a, b)}
    summary = dict(
        config=config,
        checkpoint=checkpoint,
        dataloader=dataloader,
        bn=bn,
        images={a: measured['images'][ia], b: measured['images'][ib]},
        classes={x: list(classes[x]) for x in (a, b)},
        thresholds=thresholds,
        finer=finer,
        label_space=space,
        universal=learned['universal'],
        unions=learned['unions'],
        universal_label_space=universal,
        relations={
            choice: [dict(r._asdict(), a=classes[a][r.a], b=classes[b][r.b]) for r in rs]
            for choice, rs in relations.items()
        },
        # Each BN choice's mapping of the two datasets, to see where the choice matters.
        mapping_by_bn={
            choice: label_space_from_relations({a: classes[a], b: classes[b]}, rs)['label_space'][
                'mapping'
            ]
            for choice, rs in relations.items()
        },
        miou={
            x: dict(own=own[x], **{s: mious[s][model.dataset_index(x)] for s in spaces})
            for x in (a, b)
        },
        # Share of each dataset's labelled pixels a space keeps (the rest it ignores): an mIoU
        # over fewer, easier classes is higher without being better.
        kept={
            x: {
                s: kept_pixels(evidence['image'][(x, x)], space.table(model.dataset_index(x)))
                for s, space in spaces.items()
            }
            for x in (a, b)
        },
        confusions={
            choice: {f'{x}->{y}': c.tolist() for (x, y), c in per.items()}
            for choice, per in evidence.items()
        },
    )
    if compare is not None:
        summary['compare'] = dict(
            file=compare,
            classes=_compared(space['mapping'], spaces['compare'], model, classes, (a, b)),
        )
    write_label_space(out_file, summary)
    return summary


def universal_label_space(
    learned: dict,
    pair: Dict[str, Sequence[str]],
    palettes: Dict[str, Optional[list]],
    dataset_names: Sequence[str],
    classes: Dict[str, Sequence[str]],
) -> dict:
    """The learned space in its universal form, a label space for a model whose one classifier
    predicts the universal classes (``universal_head=True``): ``classes`` the universal ones,
    each dataset's mapping (by class id) its classes as unions of them (Bevandić & Šegvić).

    Args:
        learned (dict): :func:`label_space_from_relations`' result (``universal``, ``unions``).
        pair (dict): The two related datasets' class names.
        palettes (dict): Their palettes, where known: a universal class that is one dataset
            class alone gets its colour.
        dataset_names (Sequence[str]): The model's datasets; one with a pair dataset's classes
            shares its mapping.
        classes (dict): Every dataset's class names.
    """
    universal, unions = list(learned['universal']), learned['unions']
    mapping = {}
    for name in dataset_names:
        x = next(x for x in pair if tuple(classes[name]) == tuple(pair[x]))
        mapping[name] = [list(unions[x][c]) for c in pair[x]]
    palette = []
    for u in universal:
        colour = next(
            (
                palettes[x][k]
                for x in pair
                if palettes.get(x) is not None
                for k, c in enumerate(pair[x])
                if unions[x][c] == [u]
            ),
            None,
        )
        palette.append(colour)
    space = dict(classes=tuple(universal), mapping=mapping)
    if all(c is not None for c in palette):
        space['palette'] = [list(map(int, c)) for c in palette]
    return space


def _read_label_space(path: str, model) -> dict:
    """``label_space`` of a label space file, its mappings of the model's datasets."""
    space = Config.fromfile(path).get('label_space')
    if not isinstance(space, dict) or 'classes' not in space:
        raise ValueError(
            f'{path}: expected a label space file (label_space = dict(classes=..., '
            'mapping=...), as configs/_base_/label_spaces/*.py)'
        )
    space = space.to_dict() if hasattr(space, 'to_dict') else dict(space)
    space['mapping'] = {
        k: v for k, v in (space.get('mapping') or {}).items() if k in model.dataset_names
    }
    return space


def _label_space(model, classes: dict, space: dict) -> LabelSpace:
    return LabelSpace(
        dataset_names=model.dataset_names,
        num_classes=model.classes_per_dataset(),
        dataset_classes=classes,
        **space,
    )


def _compared(mapping: dict, compare: LabelSpace, model, classes: dict, pair) -> list:
    """Per class of the two datasets: its learned target, the compared space's, and whether
    both group it with the same classes (names aside)."""
    learned = _label_space(model, classes, dict(classes=_targets(mapping), mapping=mapping))
    nodes = [(x, k) for x in pair for k in range(len(classes[x]))]

    def partners(space, x, k):
        table = {y: space.table(model.dataset_index(y)) for y in pair}
        t = table[x][k]
        return None if t == 255 else frozenset(n for n in nodes if table[n[0]][n[1]] == t)

    rows = []
    for x, k in nodes:
        ours, theirs = (
            learned.table(model.dataset_index(x))[k],
            compare.table(model.dataset_index(x))[k],
        )
        rows.append(
            dict(
                dataset=x,
                cls=classes[x][k],
                learned=None if ours == 255 else learned.classes[ours],
                compare=None if theirs == 255 else compare.classes[theirs],
                agree=partners(learned, x, k) == partners(compare, x, k),
            )
        )
    return rows


def _targets(mapping: dict) -> tuple:
    return tuple(dict.fromkeys(t for m in mapping.values() for t in m if t is not None))


def relations_table(summary: dict) -> List[str]:
    """The relations as a text table: a row per related pair, by class of the finer dataset
    (else the first), then a row per class related to none, with its most likely partner."""
    (a, b), bn = list(summary['images']), summary['bn']
    first, other = (b, a) if summary['finer'] == b else (a, b)
    key = {a: 'a', b: 'b'}
    flip = {'inside': 'contains', 'contains': 'inside'}
    classes, mapping = summary['classes'], summary['label_space']['mapping']
    shares = {
        (x, y): row_shares(np.array(summary['confusions'][bn][f'{x}->{y}']))
        for x, y in ((a, b), (b, a))
    }
    compared = {(r['dataset'], r['cls']): r for r in summary.get('compare', {}).get('classes', [])}
    rows = [
        [f'{first} class', 'relation', f'{other} class', 'share ->', 'share <-', 'learned']
        + (['hand-written', 'agree'] if compared else [])
    ]
    for x, y in ((first, other), (other, first)):
        for k, c in enumerate(classes[x]):
            found = [r for r in summary['relations'][bn] if r[key[x]] == c]
            if x == other and found:
                continue  # shown from the first dataset's side
            if not found:  # its most likely partner, and why it is not one
                j = int(np.argmax(shares[(x, y)][k]))
                found = [
                    {
                        key[x]: c,
                        key[y]: classes[y][j],
                        'kind': 'unrelated',
                        f'share_{key[x]}{key[y]}': shares[(x, y)][k, j],
                        f'share_{key[y]}{key[x]}': shares[(y, x)][j, k],
                    }
                ]
            for r in found:
                there, back = r[f'share_{key[x]}{key[y]}'], r[f'share_{key[y]}{key[x]}']
                kind = r['kind'] if x == a else flip.get(r['kind'], r['kind'])
                row = [c, kind, r[key[y]], f'{there:.2f}', f'{back:.2f}', str(mapping[x][k])]
                if x == other:  # the columns are the first dataset's: swap
                    row = [
                        r[key[y]],
                        flip.get(kind, kind),
                        c,
                        f'{back:.2f}',
                        f'{there:.2f}',
                        str(mapping[x][k]),
                    ]
                if compared:
                    cmp = compared[(x, c)]
                    row += [str(cmp['compare']), 'yes' if cmp['agree'] else 'NO']
                rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ['  '.join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]


def write_label_space(out_file: str, summary: dict) -> None:
    """Write the label space file (``label_space = dict(...)``, the relations table in its
    header) and the evidence (``summary`` as JSON) beside it.

    Every class and dataset name is a literal that loads back as it is (names come from the
    checkpoint: untrusted text), and a header line that is not plain text is its literal.

    Args:
        out_file (str): The ``.py`` file.
        summary (dict): As :func:`learn_label_space` returns it.
    """
    space = summary['label_space']
    evidence = osp.splitext(out_file)[0] + '.json'
    images = ', '.join(f'{n} images of {x}' for x, n in summary['images'].items())
    header = [
        f'Learned from {summary["checkpoint"]} ({summary["config"]})',
        'by tools/analysis/learn_label_space.py (docs/label_space.md):',
        f"the {summary['dataloader']} dataloader's {images}, BN of the {summary['bn']}.",
        f'Evidence (confusions, shares, universal classes, mIoU): {osp.basename(evidence)}',
        '',
        *relations_table(summary),
    ]
    written = dict(classes=tuple(space['classes']))
    if 'palette' in space:
        written['palette'] = [list(map(int, p)) for p in space['palette']]
    written['mapping'] = dict(space['mapping'])
    contents = dict(label_space=written)
    if summary.get('universal_label_space') is not None:
        # the same space for universal_head=True: the universal classes, each dataset's classes
        # as unions of them
        universal = summary['universal_label_space']
        contents['universal_label_space'] = dict(
            universal, classes=tuple(universal['classes']), mapping=dict(universal['mapping'])
        )
        header += [
            '',
            'universal_label_space: the universal classes, each class a union of them',
            '(model=dict(label_space=universal_label_space, universal_head=True)).',
        ]
    dirname = osp.dirname(out_file)
    if dirname:
        os.makedirs(dirname, exist_ok=True)
    dump_config(contents, out_file, header)
    with open(evidence, 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
