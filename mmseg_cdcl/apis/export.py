"""Export one dataset's branch of a CDCL model as a plain MMSeg model (config + checkpoint)."""

import copy
import os.path as osp
import re
from collections import OrderedDict
from typing import Optional, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.utils import mkdir_or_exist
from mmseg.registry import MODELS
from torch import nn

from ..datasets.transforms.dataset_test_pipelines import multi_dataset_config
from ..models.layers import DSBN, DSBN_CFG, DatasetBranches
from ..utils.config_literals import dump_config
from .checkpoint import load_cdcl_checkpoint
from .inference import dataset_metainfo, dataset_test_pipeline

# Arguments only the CDCL components take.
_CDCL_ARGS = (
    'num_datasets',
    'dataset_names',
    'loss_weights',
    'default_dataset',
    'label_space',
    'branch_selection',
    'universal_head',
)
_CDCL_SEGMENTORS = ('CDCLEncoderDecoder', 'CDCLCascadeEncoderDecoder')


def plain_model_cfg(cfg, d: int):
    """Rewrite a CDCL model config into the plain MMSeg one of dataset ``d``: for a converted
    stock config, that config with dataset ``d``'s classes; for explicit DAB components, their
    MMSeg counterparts. A universal model's (``universal_head=True``) heads predict its label
    space's classes, whatever the dataset."""
    if isinstance(cfg, dict) and cfg.get('universal_head'):
        cfg = _universal_classes(cfg, len(cfg['label_space']['classes']))
    if (
        isinstance(cfg, dict)
        and cfg.get('type') in _CDCL_SEGMENTORS
        and cfg.get('num_classes') is not None
    ):
        return _plain_converted_cfg(cfg, d)
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(plain_model_cfg(c, d) for c in cfg)
    if not isinstance(cfg, dict):
        return cfg
    cfg = {k: plain_model_cfg(v, d) for k, v in cfg.items()}
    if cfg.get('type') == 'DSBN':
        return DSBN.plain_cfg(cfg)
    cls = MODELS.get(cfg['type']) if isinstance(cfg.get('type'), str) else None
    plain_type = getattr(cls, 'plain_type', None)
    if plain_type is None:
        return cfg
    cfg['type'] = plain_type
    for key in _CDCL_ARGS:
        cfg.pop(key, None)
    for key in ('num_classes', 'ignore_index'):
        if isinstance(cfg.get(key), (list, tuple)):
            cfg[key] = cfg[key][d]
    if 'norm_cfg' not in cfg and cfg['type'] != 'EncoderDecoder':
        cfg['norm_cfg'] = DSBN.plain_cfg(DSBN_CFG)  # the DAB default; MMSeg heads default to none
    return cfg


def _plain_converted_cfg(cfg: dict, d: int) -> dict:
    """The stock model config a ``CDCLEncoderDecoder(num_classes=[...])`` was merged onto, its
    heads with dataset ``d``'s classes (those that predict the model's classes)."""
    cfg = copy.deepcopy(cfg)
    num_classes, ignore_index = cfg.pop('num_classes'), cfg.pop('ignore_index', None)
    for key in _CDCL_ARGS:
        cfg.pop(key, None)
    cfg['type'] = 'CascadeEncoderDecoder' if cfg.get('num_stages') else 'EncoderDecoder'
    decode = cfg['decode_head']
    classes = (decode[-1] if isinstance(decode, list) else decode).get('num_classes')
    for key in ('decode_head', 'auxiliary_head'):
        heads = cfg.get(key)
        for head in heads if isinstance(heads, list) else [heads] * (heads is not None):
            if head.get('num_classes') != classes:
                continue  # shared by the datasets (e.g. STDC's boundary head)
            head['num_classes'] = num_classes[d]
            if ignore_index is not None:
                head['ignore_index'] = (
                    ignore_index if isinstance(ignore_index, int) else ignore_index[d]
                )
    return cfg


def _universal_classes(cfg: dict, num_classes: int) -> dict:
    """A universal model's config as that of per-dataset heads of ``num_classes`` classes each
    (its one classifier, exported for one dataset), without ``universal_head``."""
    cfg = copy.deepcopy(cfg)
    cfg.pop('universal_head')
    if isinstance(cfg.get('num_classes'), (list, tuple)):  # a converted stock config
        cfg['num_classes'] = [num_classes] * len(cfg['num_classes'])
    for key in ('decode_head', 'auxiliary_head'):
        heads = cfg.get(key)
        for head in heads if isinstance(heads, list) else [heads] * (heads is not None):
            if isinstance(head.get('num_classes'), (list, tuple)):  # a DAB head
                head['num_classes'] = [num_classes] * len(head['num_classes'])
    return cfg


def plain_state_dict(state_dict: dict, d: int, model: Optional[nn.Module] = None) -> OrderedDict:
    """Dataset ``d``'s branch of every DSBN and per-dataset classifier, under plain MMSeg keys.

    Args:
        model (nn.Module, optional): The CDCL model, whose DSBN and ``DatasetBranches`` modules
            tell which keys are per dataset. Defaults to the DAB components' (``bns``,
            ``conv_seg``).
    """
    if model is None:
        dsbn, classifiers = r'.+', r'.+\.conv_seg'
    else:
        dsbn, classifiers = (
            '|'.join(re.escape(name) for name, m in model.named_modules() if isinstance(m, kind))
            or '$^'
            for kind in (DSBN, DatasetBranches)
        )
    # '<dsbn>.bns.<d>.<key>' and '<classifier>.<d>.<key>' of dataset d become '<name>.<key>'.
    branch = re.compile(rf'^(?:(?P<dsbn>{dsbn})\.bns|(?P<classifier>{classifiers}))\.(\d+)\.')
    plain = OrderedDict()
    for key, value in state_dict.items():
        m = branch.match(key)
        if m is None:
            plain[key] = value
        elif int(m.group(3)) == d:
            plain[f'{m.group("dsbn") or m.group("classifier")}.{key[m.end() :]}'] = value
    return plain


def export_single_dataset(
    config: Union[str, Config], checkpoint: str, dataset: str, out_dir: str
) -> Tuple[str, str]:
    """Write ``<out_dir>/<dataset>.py`` and ``<out_dir>/<dataset>.pth``: the plain MMSeg model
    (for a converted model the stock config, BN or SyncBN as there; one classifier) holding
    ``dataset``'s branch, loadable with ``mmseg.apis.init_model`` without mmseg_cdcl. The
    config also holds the dataset's test dataloader, ``IoUMetric``, the test loop and
    ``SegLocalVisualizer``, so that MMSeg's ``tools/test.py`` and ``MMSegInferencer`` run on it
    (a dataset type of mmseg_cdcl's own, ``CamVidDataset``, needs
    ``custom_imports=dict(imports=['mmseg_cdcl'])`` to build). The plain model predicts in the
    dataset's classes, also for a model with a ``label_space`` (carried as ``label_space``,
    which stock MMSeg ignores). A universal model's (``universal_head=True``) predicts the
    universal classes with the dataset's DSBN branch: its ``dataset_meta`` is theirs, it carries
    the dataset's classes as unions of them (``universal_label_space``), and where those are not
    the universal classes its test dataloader holds only the test pipeline (the dataset's labels
    cannot score its predictions).

    Returns:
        The paths of the config and the checkpoint.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    names = list(cfg.model.get('dataset_names', []))
    if dataset not in names:
        raise ValueError(f"unknown dataset '{dataset}': the model's datasets are {names}")
    d = names.index(dataset)

    # The checkpoint's branches by dataset name, into the model whose modules tell which
    # weights are per dataset; strict: no weight of the export may be left as initialised.
    model = MODELS.build(copy.deepcopy(cfg.model))
    ckpt = load_cdcl_checkpoint(model, checkpoint, strict=True)
    if 'dataset_meta' in (ckpt.get('meta') or {}):
        model.dataset_meta = ckpt['meta']['dataset_meta']
    model.set_dataset_classes(
        {
            name: meta['classes']
            for name in names
            if name not in model.dataset_classes
            and (meta := dataset_metainfo(cfg, name)) is not None
        }
    )
    meta = dict(
        exported_from=dict(checkpoint=osp.abspath(checkpoint), dataset=dataset),
        dataset_meta=_dataset_meta(cfg, ckpt, model, dataset),
    )
    plain = dict(default_scope='mmseg', model=plain_model_cfg(cfg.model.to_dict(), d))
    plain['model'].pop('pretrained', None)
    header, scored = [], True
    if model.universal_head:
        space = model.label_space
        meta['dataset_meta'].update(space.meta(), classes=tuple(space.classes))
        # For reading its predictions in the dataset's classes: P(c) = Σ_{u∈U(c)} p(u).
        plain['universal_label_space'] = meta['universal_label_space'] = dict(
            classes=list(space.classes),
            palette=space.palette,
            mapping={dataset: [[space.classes[u] for u in us] for us in space.union_ids(d)]},
        )
        own = model.dataset_classes.get(dataset) or (dataset_metainfo(cfg, dataset) or {}).get(
            'classes'
        )
        scored = own is not None and tuple(own) == tuple(space.classes)
        header = [
            f"{dataset}'s DSBN branch of a universal CDCL model (universal_head=True): it",
            f'predicts the {len(space.classes)} universal classes; universal_label_space holds',
            "the dataset's classes as unions of them.",
        ]
        if not scored:
            header.append("No test data: the dataset's labels are not in the universal classes.")
    elif model.label_space is not None:
        # Carried for reading the plain model's predictions in the label space (LabelSpace
        # of this dataset's mapping); stock MMSeg ignores it and predicts the dataset's classes.
        space = model.label_space
        plain['label_space'] = meta['label_space'] = dict(
            classes=list(space.classes),
            palette=space.palette,
            mapping={dataset: [None if t == 255 else space.classes[t] for t in space.table(d)]},
        )
    pipeline = dataset_test_pipeline(cfg, dataset)
    if pipeline is not None:
        plain['test_pipeline'] = pipeline
    plain.update(_stock_test_config(cfg, dataset, pipeline))
    if not scored:
        plain['test_dataloader']['dataset'] = {} if pipeline is None else dict(pipeline=pipeline)
        plain.pop('test_evaluator')
    config_path = osp.join(out_dir, f'{dataset}.py')
    ckpt_path = osp.join(out_dir, f'{dataset}.pth')
    mkdir_or_exist(out_dir)
    # every string a literal (class names come from the checkpoint)
    dump_config(plain, config_path, header)
    torch.save(
        dict(state_dict=plain_state_dict(model.state_dict(), d, model), meta=meta), ckpt_path
    )
    return config_path, ckpt_path


def _stock_test_config(cfg: Config, dataset: str, pipeline: Optional[list]) -> dict:
    """What MMSeg's own tools need beyond the model to test and draw the plain model: the
    dataset's test dataloader (the CDCL config's, else its test pipeline alone, which
    ``MMSegInferencer`` reads), ``IoUMetric``, the test loop and ``SegLocalVisualizer``."""
    own = multi_dataset_config(cfg, dataset)
    loader = copy.deepcopy(
        (cfg.get('test_dataloader') or {}).to_dict()
        if cfg.get('test_dataloader') is not None
        else {}
    )
    loader.pop('sampler', None)
    loader.update(
        batch_size=1,
        num_workers=loader.get('num_workers', 1),
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=copy.deepcopy(own) if own is not None else dict(pipeline=pipeline),
    )
    if pipeline is None and own is None:
        loader['dataset'].pop('pipeline')
    return dict(
        test_dataloader=loader,
        test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        test_cfg=dict(type='TestLoop'),
        visualizer=dict(
            type='SegLocalVisualizer',
            vis_backends=[dict(type='LocalVisBackend')],
            name='visualizer',
        ),
    )


def _dataset_meta(cfg: Config, checkpoint: dict, model: nn.Module, dataset: str) -> dict:
    """``dataset``'s ``classes`` and ``palette``, which stock ``init_model`` needs (without
    them it guesses classes from the class count, and fails on cascades): the checkpoint's
    meta, else the config's dataloaders, else the class names the checkpoint states, else
    class ids as names."""
    meta = ((checkpoint.get('meta') or {}).get('dataset_meta') or {}).get('datasets', {}).get(
        dataset
    ) or dataset_metainfo(cfg, dataset)
    meta = dict(meta or {})
    num_classes = model.classes_per_dataset()[model.dataset_index(dataset)]
    if meta.get('classes') is None:
        meta['classes'] = model.dataset_classes.get(dataset)
    if meta['classes'] is None:
        print_log(
            f"export: no class names of dataset '{dataset}' in the checkpoint or the "
            'config: its classes are named by their ids',
            logger='current',
            level=30,
        )
        meta['classes'] = tuple(str(i) for i in range(num_classes))
    meta['classes'] = tuple(meta['classes'])
    if meta.get('palette') is None:
        meta['palette'] = np.random.default_rng(0).integers(0, 256, (num_classes, 3)).tolist()
    return meta
