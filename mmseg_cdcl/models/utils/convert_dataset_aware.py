"""A stock MMSeg model made CDCL: Dataset-Aware Blocks and one classifier per dataset.

As ``nn.SyncBatchNorm.convert_sync_batchnorm`` converts a built model's norms,
:func:`convert_dataset_aware` converts a built segmentor: every BatchNorm becomes a DSBN
(``DSBN.convert_dsbn``), every head that predicts the model's classes gets one classifier per
dataset (:func:`build_dataset_aware_head`: the modules whose parameters depend on
``num_classes``, found by building the head with different class counts, so heads registered by
other packages work too) and :func:`convert_running_statistics` makes other running statistics
per dataset. :func:`check_convertible` refuses, from the config alone, what cannot be converted
(``UNCONVERTIBLE``); :func:`runs_on_mixed_batches` tells which heads run once on a batch of
several datasets.
"""

import warnings
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..decode_heads.dataset_aware_head import is_dataset_aware, loss_modules, per_dataset
from ..layers import DSBN, DatasetAwareModule, DatasetBranches, DatasetStatistics, updated_buffers

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
HEAD_KEYS = ('decode_head', 'auxiliary_head')


def check_convertible(
    cfgs: dict, dataset_names: Sequence[str], num_classes: Sequence[int], ignore_index=None
) -> None:
    """Refuse what CDCL cannot convert before building anything: ``num_classes`` of another
    length than the datasets, heads it cannot make per dataset.

    Args:
        cfgs (dict): The segmentor's arguments (``decode_head``, ``auxiliary_head`` configs).
        dataset_names (Sequence[str]): The datasets.
        num_classes (Sequence[int]): Classes of each dataset.
        ignore_index (int | Sequence[int], optional): Shared or per dataset.
    """
    if isinstance(num_classes, (int, str)) or len(num_classes) != len(dataset_names):
        raise ValueError(
            f'num_classes={num_classes!r}: expected one class count per '
            f'dataset {list(dataset_names)}'
        )
    classes = head_classes(cfgs.get('decode_head'))
    for key in HEAD_KEYS:
        heads = cfgs.get(key)
        for i, cfg in enumerate(heads if isinstance(heads, list) else [heads]):
            name = f'{key}[{i}]' if isinstance(heads, list) else key
            kind = (cfg or {}).get('type')
            if isinstance(kind, str) and kind in UNCONVERTIBLE:
                raise ValueError(
                    f'{name} ({kind}) cannot be trained by CDCL: {UNCONVERTIBLE[kind]}'
                )
            if (
                cfg is not None
                and cfg.get('num_classes') == classes
                and not isinstance(classes, (list, tuple))
            ):  # converted as built below
                check_dataset_aware_head(cfg, num_classes, ignore_index, name)


def convert_dataset_aware(
    model: nn.Module, cfgs: dict, num_classes: Sequence[int], ignore_index=None
) -> nn.Module:
    """Convert the stock segmentor just built from ``cfgs``: one classifier per dataset in
    every head that predicts the model's classes (other heads, e.g. STDC's 2-class boundary
    head, are shared), every BatchNorm a DSBN. Returns the converted ``model``.

    Args:
        model (nn.Module): An MMSeg segmentor (``decode_head``, optional ``auxiliary_head``).
        cfgs (dict): Its arguments: the heads' configs, to build them per dataset.
        num_classes (Sequence[int]): Classes of each dataset.
        ignore_index (int | Sequence[int], optional): Shared or per dataset; defaults to the
            heads' (255).
    """
    classes = head_classes(cfgs['decode_head'])

    def convert(head: nn.Module, cfg: dict, name: str) -> nn.Module:
        if is_dataset_aware(head):
            return head
        if cfg.get('num_classes') != classes:
            print_log(
                f'CDCL: {name} ({cfg.get("type")}) predicts {cfg.get("num_classes")} '
                f"classes, not the model's {classes}: shared by the datasets",
                logger='current',
            )
            return head
        return build_dataset_aware_head(cfg, num_classes, ignore_index, name)

    for key in HEAD_KEYS:
        cfg, head = cfgs.get(key), getattr(model, key, None)
        if isinstance(head, nn.ModuleList):
            for i, (h, c) in enumerate(zip(head, cfg)):
                head[i] = convert(h, c, f'{key}[{i}]')
        elif head is not None:
            setattr(model, key, convert(head, cfg, key))
    DSBN.convert_dsbn(model, len(num_classes))
    if not any(isinstance(m, DSBN) for m in model.modules()):
        warn('CDCL: the model has no BatchNorm, so nothing is dataset-specific but the classifiers')
    return model


def convert_running_statistics(model: nn.Module, num_datasets: int, size: int = 64) -> nn.Module:
    """Every module that updates a buffer from its inputs in training (EMANet's bases)
    becomes one copy per dataset (:class:`DatasetStatistics`), as DSBN makes BatchNorm's
    statistics per dataset. The buffers are found by one training step's forward
    (``model.loss``) of two ``size`` x ``size`` images, with the model restored afterwards; it
    runs only if the model has buffers besides BatchNorm's. A buffer of a top-level component
    itself (a head, the backbone) cannot be copied without it: the model is warned about by
    name. Returns ``model``.

    Args:
        model (nn.Module): A CDCL segmentor (its ``loss`` and ``heads()``).
        num_datasets (int): Copies of each such module.
        size (int): Side of the probe's images. Defaults to 64.
    """
    aware = [
        f'{n}.' for n, m in model.named_modules() if isinstance(m, (DatasetAwareModule, _BatchNorm))
    ] + ['data_preprocessor.']
    candidates = [n for n, _ in model.named_buffers() if not n.startswith(tuple(aware))]
    if not candidates:
        return model
    samples = []
    for _ in range(2):
        sample = SegDataSample(
            metainfo=dict(
                dataset_idx=0,
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size),
                padding_size=[0] * 4,
            )
        )
        sample.gt_sem_seg = PixelData(data=torch.zeros(1, size, size, dtype=torch.long))
        samples.append(sample)
    inputs = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    try:
        updated = updated_buffers(model, lambda: model.loss(inputs, samples), candidates)
    except Exception as e:  # any model's forward: the check is best effort
        warn(
            f'CDCL: cannot tell whether the buffers {candidates} are updated from the '
            f'inputs in training (a training forward of 2 {size}x{size} images raised '
            f'{type(e).__name__}: {e}); if they are, the datasets share them'
        )
        return model
    components = {'': 'the segmentor', 'backbone': 'the backbone', 'neck': 'the neck'}
    components.update(
        {name: 'a head' for name, m in model.named_modules() if any(m is h for h in model.heads())}
    )
    owners: Dict[str, List[str]] = {}
    for name in updated:
        owner, _, buffer = name.rpartition('.')
        owners.setdefault(owner, []).append(buffer)
    for owner, buffers in owners.items():
        module = model.get_submodule(owner)
        if owner in components:
            warn(
                f'CDCL: {owner or "the model"} ({type(module).__name__}) updates its '
                f'buffers {buffers} from the inputs in training, and as '
                f'{components[owner]} it cannot be copied per dataset: the datasets share '
                "them, so one dataset's samples change the forward of another's"
            )
            continue
        parent, _, attr = owner.rpartition('.')
        setattr(model.get_submodule(parent), attr, DatasetStatistics.of(module, num_datasets))
        print_log(
            f'CDCL: {owner} ({type(module).__name__}) updates its buffers {buffers} '
            'from the inputs in training: one copy per dataset',
            logger='current',
        )
    return model


def _standard_forward(self, inputs):
    output = self._forward_feature(inputs)
    output = self.cls_seg(output)
    return output


def runs_on_mixed_batches(head: nn.Module) -> bool:
    """Whether ``head`` is MMSeg's usual decode head: its forward is (to the bytecode)
    ``cls_seg(_forward_feature(inputs))`` (FCN, PSP, ASPP, UPerNet, STDC heads), its loss and
    ``cls_seg`` are BaseDecodeHead's, and its classifier ``conv_seg`` is its only per-dataset
    module. Its features then do not depend on the classes, and one forward of them serves
    every dataset."""
    kind, code, reference = type(head), type(head).forward.__code__, _standard_forward.__code__
    return (
        code.co_code == reference.co_code
        and code.co_names == reference.co_names
        and kind.loss is BaseDecodeHead.loss
        and kind.cls_seg is BaseDecodeHead.cls_seg
        and [n for n, m in head.named_modules() if isinstance(m, DatasetBranches)]
        in ([], ['conv_seg'])
    )


def head_classes(decode) -> Optional[Union[int, Sequence[int]]]:
    """``num_classes`` of a decode head config (the last stage's of a cascade)."""
    decode = decode[-1] if isinstance(decode, list) else decode
    return None if decode is None else decode.get('num_classes')


def config_classes(num_classes, cfgs: dict) -> Optional[Sequence[int]]:
    """Classes of each dataset as the config states them (converted or DAB heads); None where
    only the built model tells."""
    classes = num_classes if num_classes is not None else head_classes(cfgs.get('decode_head'))
    return classes if isinstance(classes, (list, tuple)) else None


def check_branches(model: nn.Module, num_datasets: int) -> None:
    """Refuse a segmentor whose dataset-aware modules have another number of branches than
    its datasets (a DAB component configured for other datasets)."""
    wrong = [
        f'{name} ({type(m).__name__}) has {m.num_datasets}'
        for name, m in model.named_modules()
        if (isinstance(m, DatasetAwareModule) or is_dataset_aware(m))
        and m.num_datasets != num_datasets
    ]
    if wrong:
        raise ValueError(
            f'CDCLEncoderDecoder has {num_datasets} datasets '
            f'{list(model.dataset_names)} but not as many dataset branches in: '
            + '; '.join(wrong[:5])
            + (f'; ... ({len(wrong)} modules)' if len(wrong) > 5 else '')
        )


def warn(message: str) -> None:
    """A warning, in the log too."""
    warnings.warn(message)
    print_log(message, logger='current', level=30)


def _type_name(cfg: dict) -> str:
    kind = cfg.get('type')
    return kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))


def class_dependent_modules(head: nn.Module, probe: nn.Module, owner: str) -> List[str]:
    """Names of the modules of ``head`` whose own parameters or buffers have other shapes in
    ``probe``, the same head built for another number of classes."""

    def shapes(m):
        return {k: tuple(v.shape) for k, v in [*m.named_parameters(), *m.named_buffers()]}

    mine, other = shapes(head), shapes(probe)
    if set(mine) != set(other):
        raise ValueError(
            f'{owner}: its structure depends on num_classes (parameters '
            f'{sorted(set(mine) ^ set(other))[:4]}), so it cannot be made '
            'per dataset'
        )
    names = sorted({k.rpartition('.')[0] for k in mine if mine[k] != other[k]})
    if '' in names:
        direct = [k for k in mine if '.' not in k and mine[k] != other[k]]
        raise ValueError(
            f'{owner}: its own parameters {direct} depend on num_classes; only '
            'submodules (classifiers) can be made per dataset'
        )
    if not names:
        raise ValueError(
            f'{owner}: none of its parameters depends on num_classes, so it has no '
            'classifier to make per dataset'
        )
    return names


def _checked_cfg(
    cfg: dict, num_classes: Sequence[int], ignore_index, owner: str
) -> List[Optional[int]]:
    """The refusals that need only the head's config; each dataset's ignore index."""
    kind = _type_name(cfg)
    if kind in UNCONVERTIBLE:
        raise ValueError(f'{owner} cannot be trained by CDCL: {UNCONVERTIBLE[kind]}')
    if 'num_classes' not in cfg:
        raise ValueError(f'{owner} has no num_classes in its config: not a classifier head')
    given_out = cfg.get('out_channels')
    if given_out is not None and given_out != cfg['num_classes']:
        raise ValueError(
            f'{owner} has out_channels={given_out} for num_classes='
            f'{cfg["num_classes"]} (binary segmentation): CDCL needs one output '
            'per class'
        )
    return per_dataset(
        cfg.get('ignore_index', 255) if ignore_index is None else ignore_index,
        len(num_classes),
        'ignore_index',
        owner,
    )


def check_dataset_aware_head(
    cfg: dict,
    num_classes: Sequence[int],
    ignore_index: Union[int, Sequence[int], None] = None,
    owner: str = 'decode_head',
) -> None:
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
    class_dependent_modules(*heads, owner)


def build_dataset_aware_head(
    cfg: dict,
    num_classes: Sequence[int],
    ignore_index: Union[int, Sequence[int], None] = None,
    owner: str = 'decode_head',
) -> nn.Module:
    """Build the MMSeg head of ``cfg`` with one classifier per dataset: the modules whose
    parameters depend on ``num_classes`` become :class:`DatasetBranches`, one copy per dataset
    with its number of classes; everything else is shared.

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
    heads = [
        MODELS.build(ConfigDict(cfg, num_classes=c, ignore_index=i))
        for c, i in zip(num_classes, ignore_index)
    ]
    counts = set(num_classes)
    probe = (
        heads[[c != num_classes[0] for c in num_classes].index(True)]
        if len(counts) > 1
        else MODELS.build(ConfigDict(cfg, num_classes=num_classes[0] + 1))
    )
    head = heads[0]
    for name in class_dependent_modules(head, probe, owner):
        parent, _, attr = name.rpartition('.')
        branches = DatasetBranches(h.get_submodule(name) for h in heads)
        setattr(head.get_submodule(parent) if parent else head, attr, branches)
    head.num_datasets = len(num_classes)
    head.dataset_num_classes = tuple(num_classes)
    head.dataset_ignore_index = tuple(ignore_index)
    head.dataset_class_weights = _class_weights(head, num_classes, owner)
    return head


def _class_weights(head: nn.Module, num_classes: Sequence[int], owner: str) -> list:
    """Each dataset's ``class_weight`` of every loss: the config's where it has the dataset's
    number of classes (it was written for such a label space), else none."""
    weights = [getattr(loss, 'class_weight', None) for loss in loss_modules(head)]
    per_dataset_weights = [
        [w if w is None or len(w) == c else None for w in weights] for c in num_classes
    ]
    dropped = sorted(
        {
            c
            for c, ws in zip(num_classes, per_dataset_weights)
            for w, kept in zip(weights, ws)
            if w is not None and kept is None
        }
    )
    if dropped:
        print_log(
            f'CDCL: {owner} weights its losses for {len(next(w for w in weights if w))} '
            f'classes; datasets of {dropped} classes are weighted uniformly',
            logger='current',
        )
    return per_dataset_weights
