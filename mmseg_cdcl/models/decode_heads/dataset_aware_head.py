"""Per-dataset label spaces of CDCL: a decode head's classifiers, one per dataset.

Any MMSeg decode head becomes dataset-aware in the same way (:func:`build_dataset_aware_head`):
the modules whose parameters depend on ``num_classes`` (found by building the head with
different class counts, so heads registered by other packages work too) become
:class:`DatasetBranches`, one copy per dataset with its number of classes; everything else is
shared. The CDCL segmentor runs such a head once per dataset of a batch
(:func:`head_dataset` sets the head's ``num_classes`` and ``ignore_index``), so losses that need
more than the logits (boundaries, SE losses, cascades) are computed on that dataset's samples.
"""
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Union

import torch
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmseg.registry import MODELS
from torch import nn

from ..layers import DSBN_CFG, DatasetBranches, dsbn_cfg

# Heads whose classes are not a classifier's outputs, with the reason.
UNCONVERTIBLE = {
    'MaskFormerHead': 'a query-based head: its loss matches queries to classes with a criterion '
                      'built for one fixed num_classes (mmdet), not per dataset',
    'Mask2FormerHead': 'a query-based head: its loss matches queries to classes with a criterion '
                       'built for one fixed num_classes (mmdet), not per dataset',
    'IterativeDecodeHead': "K-Net: its kernels are read as tensors from the kernel generator's "
                           'classifier and updated iteratively, not called per dataset',
    'KernelUpdateHead': "K-Net: its kernels are read as tensors from the kernel generator's "
                        'classifier and updated iteratively, not called per dataset',
    'SideAdapterCLIPHead': 'open-vocabulary (SAN): its classes are text embeddings of class '
                           'names, it has no classifier to make per dataset',
    'VPDDepthHead': 'a depth-estimation head: it predicts no classes',
}


def _type_name(cfg: dict) -> str:
    kind = cfg.get('type')
    return kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))


def _per_dataset(value, num_datasets: int, key: str, owner: str) -> list:
    if value is None or isinstance(value, int):
        return [value] * num_datasets
    if len(value) != num_datasets:
        raise ValueError(f'{owner}: {key} has {len(value)} entries but num_classes has '
                         f'{num_datasets} (one per dataset)')
    return list(value)


def class_dependent_modules(head: nn.Module, probe: nn.Module, owner: str) -> List[str]:
    """Names of the modules of ``head`` whose own parameters or buffers have other shapes in
    ``probe``, the same head built for another number of classes."""
    def shapes(m):
        return {k: tuple(v.shape) for k, v in [*m.named_parameters(), *m.named_buffers()]}

    mine, other = shapes(head), shapes(probe)
    if set(mine) != set(other):
        raise ValueError(f'{owner}: its structure depends on num_classes (parameters '
                         f'{sorted(set(mine) ^ set(other))[:4]}), so it cannot be made '
                         'per dataset')
    names = sorted({k.rpartition('.')[0] for k in mine if mine[k] != other[k]})
    if '' in names:
        direct = [k for k in mine if '.' not in k and mine[k] != other[k]]
        raise ValueError(f'{owner}: its own parameters {direct} depend on num_classes; only '
                         'submodules (classifiers) can be made per dataset')
    return names


def _checked_cfg(cfg: dict, num_classes: Sequence[int], ignore_index,
                 owner: str) -> List[Optional[int]]:
    """The refusals that need only the head's config; each dataset's ignore index."""
    kind = _type_name(cfg)
    if kind in UNCONVERTIBLE:
        raise ValueError(f'{owner} cannot be trained by CDCL: {UNCONVERTIBLE[kind]}')
    if 'num_classes' not in cfg:
        raise ValueError(f'{owner} has no num_classes in its config: not a classifier head')
    given_out = cfg.get('out_channels')
    if given_out is not None and given_out != cfg['num_classes']:
        raise ValueError(f'{owner} has out_channels={given_out} for num_classes='
                         f"{cfg['num_classes']} (binary segmentation): CDCL needs one output "
                         'per class')
    return _per_dataset(cfg.get('ignore_index', 255) if ignore_index is None else
                        ignore_index, len(num_classes), 'ignore_index', owner)


def _classifiers(head: nn.Module, probe: nn.Module, owner: str) -> List[str]:
    names = class_dependent_modules(head, probe, owner)
    if not names:
        raise ValueError(f'{owner}: none of its parameters depends on num_classes, so it has no '
                         'classifier to make per dataset')
    return names


def check_dataset_aware_head(cfg: dict, num_classes: Sequence[int],
                             ignore_index: Union[int, Sequence[int], None] = None,
                             owner: str = 'decode_head') -> None:
    """Raise what :func:`build_dataset_aware_head` would raise, before the model is built: the
    head is built for two class counts on the meta device (no memory, no random numbers), or
    on the CPU where its ``__init__`` reads tensors' values.

    Raises:
        ValueError: the head cannot be made per dataset; names it and why.
    """
    owner = f'{owner} ({_type_name(cfg)})'
    _checked_cfg(cfg, num_classes, ignore_index, owner)
    counts = (num_classes[0], num_classes[0] + 1)
    try:
        with torch.device('meta'):
            heads = [MODELS.build(ConfigDict(cfg, num_classes=c)) for c in counts]
    except Exception:  # e.g. Segmenter's head calls .item() on a drop-path schedule
        with torch.random.fork_rng(devices=[]):  # the model's initialisation stays the same
            heads = [MODELS.build(ConfigDict(cfg, num_classes=c)) for c in counts]
    _classifiers(*heads, owner)


def build_dataset_aware_head(cfg: dict, num_classes: Sequence[int],
                             ignore_index: Union[int, Sequence[int], None] = None,
                             owner: str = 'decode_head') -> nn.Module:
    """Build the MMSeg head of ``cfg`` with one classifier per dataset.

    Args:
        cfg (dict): A stock head config (its ``num_classes`` is replaced).
        num_classes (Sequence[int]): Classes of each dataset.
        ignore_index (int | Sequence[int], optional): Shared or per dataset; defaults to the
            config's (255).
        owner (str): The head's name in the model, for error messages.

    Returns:
        The head, with ``dataset_num_classes`` and ``dataset_ignore_index``.

    Raises:
        ValueError: the head cannot be made per dataset (e.g. query-based heads); names it
            and why.
    """
    owner = f'{owner} ({_type_name(cfg)})'
    ignore_index = _checked_cfg(cfg, num_classes, ignore_index, owner)
    heads = [MODELS.build(ConfigDict(cfg, num_classes=c, ignore_index=i))
             for c, i in zip(num_classes, ignore_index)]
    counts = set(num_classes)
    probe = (heads[[c != num_classes[0] for c in num_classes].index(True)] if len(counts) > 1
             else MODELS.build(ConfigDict(cfg, num_classes=num_classes[0] + 1)))
    names = _classifiers(heads[0], probe, owner)
    head = heads[0]
    for name in names:
        parent, _, attr = name.rpartition('.')
        branches = DatasetBranches(h.get_submodule(name) for h in heads)
        setattr(head.get_submodule(parent) if parent else head, attr, branches)
    head.num_datasets = len(num_classes)
    head.dataset_num_classes = tuple(num_classes)
    head.dataset_ignore_index = tuple(ignore_index)
    head.dataset_class_weights = _class_weights(head, num_classes, owner)
    return head


def _losses(head: nn.Module) -> list:
    losses = getattr(head, 'loss_decode', None)
    return list(losses) if isinstance(losses, nn.ModuleList) else [losses] * (losses is not None)


def _class_weights(head: nn.Module, num_classes: Sequence[int], owner: str) -> list:
    """Each dataset's ``class_weight`` of every loss: the config's where it has the dataset's
    number of classes (it was written for such a label space), else none."""
    weights = [getattr(loss, 'class_weight', None) for loss in _losses(head)]
    per_dataset = [[w if w is None or len(w) == c else None for w in weights]
                   for c in num_classes]
    dropped = sorted({c for c, ws in zip(num_classes, per_dataset) for w, kept in zip(weights, ws)
                      if w is not None and kept is None})
    if dropped:
        print_log(f'CDCL: {owner} weights its losses for {len(next(w for w in weights if w))} '
                  f'classes; datasets of {dropped} classes are weighted uniformly',
                  logger='current')
    return per_dataset


def is_dataset_aware(head: nn.Module) -> bool:
    return hasattr(head, 'dataset_num_classes')


@contextmanager
def head_dataset(head: nn.Module, dataset: int,
                 ignore_index: Optional[int] = None) -> Iterator[nn.Module]:
    """The head's ``num_classes``, ``out_channels``, ``ignore_index`` and its losses'
    ``class_weight`` are those of ``dataset`` inside the block (its losses, OHEM sampler and
    predictions read them). A head shared by the datasets (e.g. STDC's boundary head) takes only
    ``ignore_index``."""
    saved = head.num_classes, head.out_channels, head.ignore_index
    losses = _losses(head)
    saved_weights = [getattr(loss, 'class_weight', None) for loss in losses]
    if is_dataset_aware(head):
        head.num_classes = head.out_channels = head.dataset_num_classes[dataset]
        head.ignore_index = head.dataset_ignore_index[dataset]
        class_weights = getattr(head, 'dataset_class_weights', None)  # not the DAB heads'
        for loss, weight in zip(losses, class_weights[dataset] if class_weights else ()):
            loss.class_weight = weight
    elif ignore_index is not None:
        head.ignore_index = ignore_index
    try:
        yield head
    finally:
        head.num_classes, head.out_channels, head.ignore_index = saved
        for loss, weight in zip(losses, saved_weights):
            if hasattr(loss, 'class_weight'):
                loss.class_weight = weight


class DatasetAwareHeadMixin:
    """Turns an MMSeg decode head into a CDCL head: the head registered as ``DAB<Head>``.

    Its convs are Dataset-Aware Blocks (DSBN norms) and ``conv_seg`` holds one classifier per
    dataset, each with its own number of classes and ignore index (``DatasetBranches``).

    Args:
        num_classes (Sequence[int]): Classes of each dataset, e.g. ``[19, 19, 11]``.
        ignore_index (int | Sequence[int]): Ignored label, shared or per dataset. Defaults to 255.
        norm_cfg (dict): Norm of the head's convs. Defaults to DSBN; a plain BN config gives
            the "shared BN" ablation.
        **kwargs: Arguments of the MMSeg head.
    """

    def __init__(self, num_classes: Sequence[int], ignore_index: Union[int, Sequence[int]] = 255,
                 norm_cfg: dict = DSBN_CFG, **kwargs):
        name = type(self).__name__
        if isinstance(num_classes, int) or not num_classes:
            raise ValueError(f'{name}: num_classes must list the classes of each dataset, '
                             f'e.g. [19, 11], got {num_classes!r}')
        num_datasets = len(num_classes)
        ignore_index = _per_dataset(ignore_index, num_datasets, 'ignore_index', name)
        norm_cfg = dsbn_cfg(norm_cfg, num_datasets, f'{name} with num_classes={list(num_classes)}')
        super().__init__(num_classes=num_classes[0], ignore_index=ignore_index[0],
                         norm_cfg=norm_cfg, **kwargs)
        self.num_datasets = num_datasets
        self.dataset_num_classes = tuple(num_classes)
        self.dataset_ignore_index = tuple(ignore_index)
        self.conv_seg = DatasetBranches(nn.Conv2d(self.channels, c, 1) for c in num_classes)
