"""A checkpoint's dataset branches matched to the model's by dataset name.

A CDCL state dict states its datasets in its metadata (``state_dict._metadata``, which torch,
mmengine and ``torch.load(weights_only=True)`` keep), under the model's prefix, in the form of
``MultiDataset``'s metainfo::

    dict(version=1, dataset_names=['cityscapes', 'bdd100k'],
         datasets=dict(cityscapes=dict(num_classes=19, ignore_index=255, classes=[...],
                                       palette=[[r, g, b], ...]), ...))

Loading then maps each of the model's datasets to the checkpoint's branch of the same name,
whatever the order of either. A wrapped model's state dict (DDP's, ``EMAHook``'s averaged
model: keys ``module.``-prefixed) states them under the wrapper's entry, ``_metadata['module']``,
which loaders that strip the keys' prefix keep: it is found there. A state dict that states
nothing (written before it did) loads by position, as it always did, with a warning where that
is ambiguous; loaders that see the whole checkpoint state its datasets from its ``meta`` first
(:func:`state_datasets_from_meta`).
"""

import ast
import logging
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log
from torch import nn

from ..layers import DatasetAwareModule, DatasetBranches

BRANCH_MAP_DOC = 'docs/usage.md#loading-a-checkpoint'


def stated_datasets(model: nn.Module) -> dict:
    """What the CDCL segmentor ``model``'s state dicts state about its datasets."""
    classes = model.classes_per_dataset()
    return dict(
        dataset_names=list(model.dataset_names),
        datasets={
            name: dict(
                num_classes=classes[d],
                ignore_index=model.dataset_ignore_index[d],
                classes=(
                    list(model.dataset_classes[name]) if name in model.dataset_classes else None
                ),
                # the colours its predictions are drawn in (MMSegInferencer keeps only the
                # first dataset's of a checkpoint's meta)
                palette=getattr(model, 'dataset_palettes', {}).get(name),
            )
            for d, name in enumerate(model.dataset_names)
        },
    )


def state_datasets(model: nn.Module, state_dict, prefix: str, local_metadata: dict) -> None:
    """State dict hook of the CDCL segmentor: its datasets (``model.stated_datasets()``),
    stated in its metadata."""
    local_metadata.update(model.stated_datasets())


def checked_dataset_classes(
    model: nn.Module, classes: Dict[str, Optional[Sequence[str]]]
) -> Dict[str, Tuple[str, ...]]:
    """The class names ``classes`` gives for the CDCL segmentor ``model``'s datasets.

    Raises:
        ValueError: other class names than the model knows, or another number of them.
    """
    known = {}
    for d, name in enumerate(model.dataset_names):
        names = classes.get(name)
        if names is None:
            continue
        names = tuple(names)
        own = model.dataset_classes.get(name)
        count = model.classes_per_dataset()[d]
        if len(names) != count or own not in (None, names):
            raise ValueError(
                f"dataset '{name}' has classes {list(names)} here but the model has "
                + (f'{count} classes' if own is None else f'{list(own)}')
            )
        known[name] = names
    return known


def checked_branch_map(branch_map, names: Sequence[str]) -> Optional[Dict[str, str]]:
    """The segmentor's ``branch_map`` argument, checked against its datasets ``names``."""
    if branch_map is None:
        return None
    if not isinstance(branch_map, dict) or not all(isinstance(v, str) for v in branch_map.values()):
        raise ValueError(
            f'branch_map={branch_map!r}: expected a dict from dataset names '
            'of the model to dataset names of the checkpoint'
        )
    unknown = sorted(set(branch_map) - set(names))
    if unknown:
        raise ValueError(f'branch_map names {unknown}, not datasets of the model {list(names)}')
    return dict(branch_map)


def prepare_state_dict(
    model: nn.Module, state_dict: dict, prefix: str, local_metadata: dict
) -> None:
    """Check a checkpoint's state dict against the CDCL segmentor ``model`` and map its branches
    to the model's datasets, in place, before the model loads it.

    A checkpoint of another architecture is an error, not a warning: mmengine loads
    ``load_from`` non-strictly and would train on from partly random weights. A checkpoint
    that states its datasets has its branches loaded by dataset name (``model.branch_map`` for
    other datasets); one that does not, by position. A dataset's classifier of other classes
    is an error too; a single-dataset MMSeg checkpoint's classifier loads into the datasets
    it fits, the others start fresh (fine-tuning to other classes, as in MMSeg).
    """
    own = model.state_dict()
    shared = [
        k[len(prefix) :] for k in state_dict if k.startswith(prefix) and k[len(prefix) :] in own
    ]
    if not shared:
        raise ValueError(
            "the checkpoint holds none of the CDCL model's weights (its first keys: "
            f"{list(state_dict)[:3]}; the model's: {list(own)[:3]}): another architecture?"
        )
    patterns = branch_patterns(model, prefix)
    # Loaders that strip a wrapper's prefix from the keys keep its _metadata entries: a root
    # model's statement may be the wrapper's.
    statement = (
        local_metadata
        if 'dataset_names' in local_metadata
        else (stated(state_dict) if not prefix else None) or {}
    )
    stated_names = statement.get('dataset_names')
    notes, sources = [], list(range(len(model.dataset_names)))
    if stated_names is not None:
        sources, notes = branch_sources(model.dataset_names, stated_names, model.branch_map)
        map_branches(state_dict, patterns, sources)
    elif len(model.dataset_names) > 1 and any(
        p.match(k) for _, _, p in patterns for k in state_dict
    ):
        print_log(
            'CDCL checkpoint: it does not state its datasets (written before checkpoints did): '
            f'its branches load by position as the datasets {list(model.dataset_names)}, '
            'right only if it was trained with model.dataset_names in that order. Loaders that '
            'read its meta (load_cdcl_checkpoint, init_cdcl_model, a config with '
            f'CheckpointDatasetsHook) load it by name ({BRANCH_MAP_DOC})',
            logger='current',
            level=logging.WARNING,
        )
    _check_classifiers(
        model.dataset_names, state_dict, own, patterns, prefix, stated_names, sources, notes
    )
    classifiers = tuple(
        f'{name}.' for name, m in model.named_modules() if isinstance(m, DatasetBranches)
    ) or ('\0',)
    wrong = [
        f'{k}: checkpoint {tuple(state_dict[prefix + k].shape)}, model {tuple(own[k].shape)}'
        for k in shared
        if prefix + k in state_dict
        and state_dict[prefix + k].shape != own[k].shape
        and not k.startswith(classifiers)
        and '.conv_seg.' not in k
    ]
    if wrong:
        raise ValueError(
            f'the checkpoint does not fit the model: {len(wrong)} tensors have '
            'other shapes, e.g. ' + '; '.join(wrong[:3])
        )
    if stated_names is not None:  # the class names of the datasets that load their own branches
        datasets = statement.get('datasets') or {}
        model.set_dataset_classes(
            {
                name: (datasets.get(name) or {}).get('classes')
                for name in model.dataset_names
                if name in stated_names
            },
            {
                name: (datasets.get(name) or {}).get('palette')
                for name in model.dataset_names
                if name in stated_names
            },
        )
    if notes:
        print_log('CDCL checkpoint: ' + '; '.join(notes), logger='current')


def _check_classifiers(
    names: Sequence[str], state_dict, own, patterns, prefix, stated, sources, notes: List[str]
) -> None:
    """Refuse a dataset's classifier of other classes; drop it where the dataset starts
    from another's branches (``branch_map``), and say which start fresh."""
    refused, started = [], set()
    for d, key, theirs, ours in classifier_misfits(state_dict, own, patterns, prefix):
        name = names[d]
        source = f'branch {sources[d]}' if stated is None else f"branch '{stated[sources[d]]}'"
        classifier = key.rsplit('.', 2)[0]  # '<classifier>.<d>.<param>'
        first = (classifier, d) not in started  # once per classifier: its weight's shapes
        started.add((classifier, d))
        if stated is not None and stated[sources[d]] != name:
            del state_dict[prefix + key]
            if first:
                notes.append(
                    f"{classifier} of dataset '{name}' starts fresh ({source} of "
                    f'the checkpoint has {theirs}, the model {ours})'
                )
        elif first:
            refused.append(
                f"dataset '{name}' ({source} of the checkpoint) {key}: "
                f'checkpoint {theirs}, model {ours}'
            )
    if refused:
        raise ValueError(
            "the checkpoint's classifiers do not fit the model's datasets "
            f'{list(names)}: a checkpoint of other datasets or classes? ' + '; '.join(refused[:4])
        )
    fresh = fresh_classifiers(state_dict, patterns, prefix, names)
    if fresh:
        notes.append('the classifier fits no branch of ' + ', '.join(fresh) + ': they start fresh')


def branch_sources(
    names: Sequence[str], stated: Sequence[str], branch_map: Optional[Dict[str, str]]
) -> Tuple[List[int], List[str]]:
    """The checkpoint's branch each of the model's datasets loads, and what to log about it.

    Args:
        names (Sequence[str]): The model's datasets.
        stated (Sequence[str]): The checkpoint's datasets, in its branch order.
        branch_map (dict, optional): For datasets the checkpoint lacks, the checkpoint dataset
            whose branches each starts from; with it (even empty), the checkpoint's datasets
            the model lacks are left out. None: the checkpoint must have the model's datasets.

    Raises:
        ValueError: the datasets differ without a ``branch_map``, or a dataset has no branch.
    """
    stated = list(stated)
    if branch_map is None:
        if set(stated) != set(names):
            raise ValueError(
                f"the checkpoint's datasets {stated} are not the model's {list(names)}: set "
                "model.branch_map to load a subset of them or to start a dataset's branches "
                f'from one of them ({BRANCH_MAP_DOC})'
            )
        return [stated.index(name) for name in names], []
    sources, notes = [], []
    for name in names:
        source = name if name in stated else branch_map.get(name)
        if source not in stated:
            raise ValueError(
                f"dataset '{name}' is not in the checkpoint, whose datasets are {stated}, and "
                f'model.branch_map={branch_map} names none of them to start it from'
            )
        if source != name:
            notes.append(f"dataset '{name}' starts from the checkpoint's '{source}' branches")
        elif name in branch_map and branch_map[name] != name:
            notes.append(
                f"model.branch_map['{name}'] is not used: the checkpoint has "
                f"'{name}' branches of its own"
            )
        sources.append(stated.index(source))
    left_out = [s for i, s in enumerate(stated) if i not in sources]
    if left_out:
        notes.append(f"the checkpoint's branches of {left_out} are not loaded")
    return sources, notes


def branch_patterns(model: nn.Module, prefix: str) -> List[Tuple[str, nn.Module, re.Pattern]]:
    """Each dataset-aware module's name, the module and the pattern of its branches' keys
    (group 1: the dataset index)."""
    return [
        (name, m, re.compile(re.escape(f'{prefix}{name}.{m.branch_prefix}') + r'(\d+)\.'))
        for name, m in model.named_modules()
        if isinstance(m, DatasetAwareModule)
    ]


def map_branches(state_dict: dict, patterns, sources: Sequence[int]) -> None:
    """Rewrite ``state_dict`` in place: the model's dataset d gets the checkpoint's branch
    ``sources[d]`` of every dataset-aware module; branches no dataset takes are removed."""
    for _, _, pattern in patterns:
        branches = {}
        for key in list(state_dict):
            m = pattern.match(key)
            if m is not None:
                branches[key] = (int(m.group(1)), m, state_dict.pop(key))
        for key, (index, m, value) in branches.items():
            for d, source in enumerate(sources):
                if source == index:
                    state_dict[f'{key[: m.start(1)]}{d}{key[m.end(1) :]}'] = value


def classifier_misfits(
    state_dict: dict, own: dict, patterns, prefix: str
) -> List[Tuple[int, str, tuple, tuple]]:
    """The per-dataset classifier tensors of ``state_dict`` whose shapes are not the model's:
    (dataset index, key without ``prefix``, checkpoint shape, model shape)."""
    misfits = []
    for _, module, pattern in patterns:
        if not isinstance(module, DatasetBranches):
            continue
        for key, value in state_dict.items():
            m = pattern.match(key)
            name = key[len(prefix) :]
            if m is not None and name in own and value.shape != own[name].shape:
                misfits.append((int(m.group(1)), name, tuple(value.shape), tuple(own[name].shape)))
    return misfits


def fresh_classifiers(state_dict: dict, patterns, prefix: str, names: Sequence[str]) -> List[str]:
    """Where a plain (single-dataset MMSeg) checkpoint's classifier fits no branch: the
    classifiers, by dataset, that ``DatasetBranches`` leaves as initialised."""
    fresh = []
    for name, module, pattern in patterns:
        if not isinstance(module, DatasetBranches):
            continue
        head = f'{prefix}{name}.'
        plain = {
            k[len(head) :]: v
            for k, v in state_dict.items()
            if k.startswith(head) and pattern.match(k) is None
        }
        if not plain:
            continue
        for d, branch in enumerate(module):
            own = branch.state_dict()
            if any(k in own and own[k].shape != v.shape for k, v in plain.items()):
                key = next(k for k in plain if k in own)
                fresh.append(
                    f"{name} of dataset '{names[d]}' (checkpoint "
                    f'{tuple(plain[key].shape)}, model {tuple(own[key].shape)})'
                )
    return fresh


def stated(state_dict) -> Optional[dict]:
    """The statement of the CDCL model whose state dict ``state_dict`` is: the root entry of
    its ``_metadata``, else the entry of the module that wraps the model (``module`` of DDP and
    of ``EMAHook``'s averaged model: the one entry that states datasets, every other entry
    above or under it). None: it states nothing."""
    metadata = getattr(state_dict, '_metadata', None) or {}
    if 'dataset_names' in (metadata.get('') or {}):
        return metadata['']
    keys = [k for k, v in metadata.items() if isinstance(v, dict) and 'dataset_names' in v]
    if len(keys) != 1:
        return None
    [key] = keys
    parts = key.split('.')
    wrappers = {'.'.join(parts[:i]) for i in range(len(parts))}
    if all(k in wrappers or k == key or k.startswith(key + '.') for k in metadata):
        return metadata[key]
    return None


def state_datasets_from_meta(checkpoint: dict, filename: str = 'the checkpoint') -> dict:
    """A whole checkpoint's datasets (its state dict's and its ``meta``), checked and stated
    where every loader finds them, in place.

    ``meta.cfg``, the training config mmengine's Runner writes, names the model's datasets in
    its branches' order (``model.dataset_names``); ``add_dataset_branch``'s checkpoint
    (``meta.added_branch``) keeps its source's ``meta.cfg`` and names its own in
    ``meta.dataset_meta.dataset_names``. A state dict that states other datasets, or the same in
    another order, is refused: the statement or the meta was edited, or the meta is another
    model's. A state dict that states nothing (written before it did) states those of
    ``meta.dataset_meta`` (the training ``MultiDataset``'s metainfo), in ``meta.cfg``'s order,
    so that it too loads by name; so does its ``EMAHook`` average (``ema_state_dict``).

    Args:
        checkpoint (dict): As ``CheckpointLoader.load_checkpoint`` returns it.
        filename (str): The checkpoint, for the error.

    Returns:
        dict: The checkpoint.

    Raises:
        ValueError: its state dict's datasets contradict its meta.
    """
    if not isinstance(checkpoint.get('state_dict'), dict):
        return checkpoint  # a bare state dict: no meta
    meta = checkpoint.get('meta') or {}
    order = trained_dataset_names(meta.get('cfg'))
    statement = stated(checkpoint['state_dict'])
    if statement is not None:
        names = list(statement['dataset_names'])
        said = 'its training config (meta.cfg) has model.dataset_names'
        if 'added_branch' in meta:
            order = (meta.get('dataset_meta') or {}).get('dataset_names')
            said = "add_dataset_branch's meta.dataset_meta has dataset_names"
        if order is not None and names != list(order):
            raise ValueError(
                f'{filename} contradicts itself: its state dict states its branches are the '
                f'datasets {names}, {said}={list(order)}: its statement or its '
                "meta was edited, or the meta is another model's; which branch is which "
                'dataset is unknown'
            )
        return checkpoint
    dataset_meta = meta.get('dataset_meta') or {}
    names = dataset_meta.get('dataset_names')
    # The branches are in the order of the model's dataset_names; the MultiDataset's may
    # differ (mmengine's config dump sorts its dict keys), so the Runner's meta.cfg says it.
    if names is not None and order is not None:
        names = order if sorted(order) == sorted(names) else None
    if names is None:
        return checkpoint
    statement = dict(dataset_names=list(names), datasets=dataset_meta.get('datasets') or {})
    keys = checkpoint['state_dict'].keys()
    wrapped = bool(keys) and all(k.startswith('module.') for k in keys)  # DDP's
    checkpoint['state_dict'] = _stating(checkpoint['state_dict'], 'module' * wrapped, statement)
    if isinstance(checkpoint.get('ema_state_dict'), dict):  # EMAHook's averaged 'module'
        checkpoint['ema_state_dict'] = _stating(checkpoint['ema_state_dict'], 'module', statement)
    return checkpoint


def _stating(state_dict: dict, key: str, statement: dict) -> OrderedDict:
    """``state_dict`` whose ``_metadata[key]`` states ``statement``."""
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is None:
        state_dict = OrderedDict(state_dict)
        state_dict._metadata = metadata = OrderedDict()
    metadata[key] = dict(metadata.get(key) or {}, **statement)
    return state_dict


def trained_dataset_names(cfg_text) -> Optional[List[str]]:
    """``model.dataset_names`` of the config text mmengine's Runner saves as a checkpoint's
    ``meta.cfg``, read as literals (never executed: a checkpoint is untrusted input); None
    where the text does not state them."""
    if not isinstance(cfg_text, str):
        return None
    try:
        tree = ast.parse(cfg_text)
    except SyntaxError:
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and any(isinstance(t, ast.Name) and t.id == 'model' for t in node.targets)
        ):
            for keyword in node.value.keywords:
                if keyword.arg == 'dataset_names':
                    try:
                        names = ast.literal_eval(keyword.value)
                    except ValueError:
                        return None
                    return list(names) if isinstance(names, (list, tuple)) else None
    return None
