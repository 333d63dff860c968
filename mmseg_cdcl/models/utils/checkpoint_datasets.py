"""A checkpoint's dataset branches matched to the model's by dataset name.

A CDCL state dict states its datasets in its metadata (``state_dict._metadata``, which torch,
mmengine and ``torch.load(weights_only=True)`` keep), under the model's prefix, in the form of
``MultiDataset``'s metainfo::

    dict(version=1, dataset_names=['cityscapes', 'bdd100k'],
         datasets=dict(cityscapes=dict(num_classes=19, ignore_index=255, classes=[...]), ...))

Loading then maps each of the model's datasets to the checkpoint's branch of the same name,
whatever the order of either; a state dict that states nothing (written before it did) loads by
position, as it always did.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from torch import nn

from ..layers import DatasetAwareModule, DatasetBranches

BRANCH_MAP_DOC = 'docs/usage.md#loading-a-checkpoint'


def branch_sources(names: Sequence[str], stated: Sequence[str],
                   branch_map: Optional[Dict[str, str]]) -> Tuple[List[int], List[str]]:
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
                f'from one of them ({BRANCH_MAP_DOC})')
        return [stated.index(name) for name in names], []
    sources, notes = [], []
    for name in names:
        source = name if name in stated else branch_map.get(name)
        if source not in stated:
            raise ValueError(
                f"dataset '{name}' is not in the checkpoint, whose datasets are {stated}, and "
                f'model.branch_map={branch_map} names none of them to start it from')
        if source != name:
            notes.append(f"dataset '{name}' starts from the checkpoint's '{source}' branches")
        elif name in branch_map and branch_map[name] != name:
            notes.append(f"model.branch_map['{name}'] is not used: the checkpoint has "
                         f"'{name}' branches of its own")
        sources.append(stated.index(source))
    left_out = [s for i, s in enumerate(stated) if i not in sources]
    if left_out:
        notes.append(f"the checkpoint's branches of {left_out} are not loaded")
    return sources, notes


def branch_patterns(model: nn.Module, prefix: str) -> List[Tuple[str, nn.Module, re.Pattern]]:
    """Each dataset-aware module's name, the module and the pattern of its branches' keys
    (group 1: the dataset index)."""
    return [(name, m, re.compile(re.escape(f'{prefix}{name}.{m.branch_prefix}') + r'(\d+)\.'))
            for name, m in model.named_modules() if isinstance(m, DatasetAwareModule)]


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
                    state_dict[f'{key[:m.start(1)]}{d}{key[m.end(1):]}'] = value


def classifier_misfits(state_dict: dict, own: dict, patterns, prefix: str
                       ) -> List[Tuple[int, str, tuple, tuple]]:
    """The per-dataset classifier tensors of ``state_dict`` whose shapes are not the model's:
    (dataset index, key without ``prefix``, checkpoint shape, model shape)."""
    misfits = []
    for _, module, pattern in patterns:
        if not isinstance(module, DatasetBranches):
            continue
        for key, value in state_dict.items():
            m = pattern.match(key)
            name = key[len(prefix):]
            if m is not None and name in own and value.shape != own[name].shape:
                misfits.append((int(m.group(1)), name, tuple(value.shape),
                                tuple(own[name].shape)))
    return misfits


def fresh_classifiers(state_dict: dict, patterns, prefix: str, names: Sequence[str]
                      ) -> List[str]:
    """Where a plain (single-dataset MMSeg) checkpoint's classifier fits no branch: the
    classifiers, by dataset, that ``DatasetBranches`` leaves as initialised."""
    fresh = []
    for name, module, pattern in patterns:
        if not isinstance(module, DatasetBranches):
            continue
        head = f'{prefix}{name}.'
        plain = {k[len(head):]: v for k, v in state_dict.items()
                 if k.startswith(head) and pattern.match(k) is None}
        if not plain:
            continue
        for d, branch in enumerate(module):
            own = branch.state_dict()
            if any(k in own and own[k].shape != v.shape for k, v in plain.items()):
                key = next(k for k in plain if k in own)
                fresh.append(f"{name} of dataset '{names[d]}' (checkpoint "
                             f'{tuple(plain[key].shape)}, model {tuple(own[key].shape)})')
    return fresh


def state_datasets_from_meta(checkpoint: dict) -> dict:
    """A checkpoint whose state dict does not state its datasets (written before it did),
    stating those of its ``meta.dataset_meta`` (the training ``MultiDataset``'s metainfo, which
    mmengine's Runner saves), so that it too loads by dataset name. Returns the checkpoint."""
    meta = (checkpoint.get('meta') or {}).get('dataset_meta') or {}
    names = meta.get('dataset_names')
    state_dict = checkpoint.get('state_dict', checkpoint)
    metadata = getattr(state_dict, '_metadata', None)
    if names is None or (metadata or {}).get('', {}).get('dataset_names') is not None:
        return checkpoint
    if metadata is None:
        state_dict = OrderedDict(state_dict)
        state_dict._metadata = metadata = OrderedDict()
        if 'state_dict' in checkpoint:
            checkpoint['state_dict'] = state_dict
        else:
            checkpoint = state_dict
    metadata[''] = dict(metadata.get('', {}), dataset_names=list(names),
                        datasets=meta.get('datasets') or {})
    return checkpoint
