"""One classifier of the universal classes for all datasets: a built CDCL model's per-dataset
classifiers become one (``CDCLEncoderDecoder(universal_head=True)``).

As :func:`~mmseg_cdcl.models.utils.convert_dataset_aware` converts a built stock model, this
converts a built CDCL one, whatever its heads (the paper's ``DABPSPHead``/``DABFCNHead`` or a
stock head made per dataset): in every head with classes per dataset, each per-dataset module
(``DatasetBranches``: ``conv_seg``, ...) becomes the module the head's config builds for the
universal classes, and the head becomes universal (:mod:`..decode_heads.universal_head`): its
outputs are the universal classes, its loss reads each dataset's labels through the unions of
the label space. DSBN stays per dataset. Checkpoint keys stay MMSeg's (``conv_seg.weight``), so
one dataset's branch exports as a plain MMSeg model of the universal classes.
"""

import logging
import re
from typing import List

from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmseg.registry import MODELS
from torch import nn

from ..decode_heads.dataset_aware_head import is_dataset_aware
from ..decode_heads.universal_head import universal_head_class
from ..layers import DatasetBranches
from ..layers.dataset_unions import DatasetUnions
from .convert_dataset_aware import HEAD_KEYS


def convert_universal_head(model: nn.Module, cfgs: dict, label_space) -> nn.Module:
    """Make every head of ``model`` with classes per dataset predict ``label_space``'s classes
    with one classifier. Returns ``model``.

    Args:
        model (nn.Module): A CDCL segmentor (its heads dataset-aware).
        cfgs (dict): Its arguments: the heads' configs, built again for the universal classes
            to make the classifier (a head registered by another package works too).
        label_space (LabelSpace): The universal space (``universal=True``).

    Raises:
        ValueError: no head has classes per dataset, or a head computes its loss in its own
            ``loss_by_feat`` (:func:`universal_head_class`).
    """
    num_classes = len(label_space.classes)
    converted = []
    for key in HEAD_KEYS:
        heads, head_cfgs = getattr(model, key, None), cfgs.get(key)
        if isinstance(heads, nn.ModuleList):
            pairs = [(f'{key}[{i}]', h, c) for i, (h, c) in enumerate(zip(heads, head_cfgs))]
        else:
            pairs = [(key, heads, head_cfgs)] if heads is not None else []
        for name, head, cfg in pairs:
            if is_dataset_aware(head):
                _convert(head, cfg, num_classes, label_space, len(model.dataset_names), name)
                converted.append(name)
    if not converted:
        raise ValueError(
            'universal_head=True: no head of the model has classes per dataset (a DAB head, or '
            'a stock head converted with num_classes=[...]) to make universal'
        )
    return model


def _convert(head: nn.Module, cfg: dict, num_classes: int, label_space, n: int, owner: str):
    """One head made universal, in place."""
    universal_cls = universal_head_class(type(head))  # refuses before anything changes
    names = [name for name, m in head.named_modules() if isinstance(m, DatasetBranches)]
    classes = cfg['num_classes']
    probe = MODELS.build(
        ConfigDict(
            cfg,
            num_classes=[num_classes] * n if isinstance(classes, (list, tuple)) else num_classes,
        )
    )
    for name in names:
        module = probe.get_submodule(name)
        if isinstance(module, DatasetBranches):  # a DAB head's: its classifiers are alike
            module = module[0]
        parent, _, attr = name.rpartition('.')
        setattr(head.get_submodule(parent) if parent else head, attr, module)
    head.__class__ = universal_cls
    head.universal_classes = num_classes
    head.dataset_unions = DatasetUnions(label_space, n)
    head.register_load_state_dict_pre_hook(_classifiers_fit(names, owner))


def _classifiers_fit(names: List[str], owner: str):
    """A load pre-hook of a universal head: a checkpoint's classifier that does not fit (one per
    dataset, or of other classes) starts fresh, logged, as MMSeg fine-tuning to other classes
    does; it does not load into the universal one."""

    def hook(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        own = module.state_dict()
        for name in names:
            head = f'{prefix}{name}.'
            per_dataset = re.compile(re.escape(head) + r'\d+\.')
            keys = [k for k in state_dict if k.startswith(head)]
            unfit = [
                k
                for k in keys
                if per_dataset.match(k)
                or (k[len(prefix) :] in own and state_dict[k].shape != own[k[len(prefix) :]].shape)
            ]
            if unfit:
                shapes = {k: tuple(state_dict[k].shape) for k in unfit[:2]}
                for k in keys:
                    del state_dict[k]
                print_log(
                    f'CDCL checkpoint: {owner}.{name} of the checkpoint ({shapes}) is not the '
                    f"model's one classifier of {module.universal_classes} universal classes "
                    '(universal_head=True): it starts fresh',
                    logger='current',
                    level=logging.WARNING,
                )

    return hook
