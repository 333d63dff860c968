"""CDCL of a stock single-dataset MMSeg config and MMSeg dataset configs.

The CDCL config inherits the stock config (model, schedule, optimizer, runtime) and states what
CDCL changes: the model's datasets and their classes (``CDCLEncoderDecoder``), a
``MultiDataset`` of the datasets with each one's own pipeline for training, validation and
testing, ``MultiDatasetSampler`` batches (per dataset: the stock batch size unless
``batch_sizes`` says otherwise), ``DATTrainLoop``, ``MultiDatasetIoUMetric``, and for
``tools/test.py --tta`` each dataset's ``tta_pipeline`` with ``CDCLTTAModel``.
``tools/convert_config.py`` is its command line.

Example:
    >>> from mmseg_cdcl.apis import convert_config
    >>> cfg = convert_config(
    ...     'mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    ...     dict(cityscapes='mmseg::_base_/datasets/cityscapes.py',
    ...          camvid='configs/_base_/datasets/camvid.py'))
    >>> cfg.model.type, cfg.model.num_classes
    ('CDCLEncoderDecoder', [19, 11])
    >>> open('configs/my_cdcl.py', 'w').write(cfg.text)  # the inheriting source
"""

import ast
import copy
import os.path as osp
import tempfile
from typing import Dict, List, Optional

from mmengine.config import Config
from mmseg.registry import DATASETS
from yapf.yapflib.yapf_api import FormatCode

from mmseg_cdcl.utils import load_config
from mmseg_cdcl.utils.config_literals import comment, is_identifier, py_literal

# Transforms of a stock training pipeline that make targets its model's losses need (PIDNet's
# boundaries): added to each dataset's pipeline that lacks them.
MODEL_TARGET_TRANSFORMS = ('GenerateEdge',)


def _dataset(cfg: Config, loader: str, path: str) -> Optional[dict]:
    dataset = (cfg.get(loader) or {}).get('dataset')
    return None if dataset is None else copy.deepcopy(dataset.to_dict())


def num_classes(dataset: dict, path: str) -> int:
    """Classes of a dataset config: its ``metainfo`` or its class's METAINFO."""
    inner = dataset.get('dataset') or (dataset.get('datasets') or [None])[0] or dataset
    classes = (inner.get('metainfo') or {}).get('classes')
    if classes is None:
        kind = inner.get('type')
        cls = DATASETS.get(kind) if isinstance(kind, str) else kind
        if cls is None:
            raise ValueError(
                f'{path}: dataset type {kind!r} is not registered in MMSeg (nor by mmseg_cdcl)'
            )
        classes = cls.METAINFO.get('classes')
    if not classes:
        raise ValueError(f'{path}: its dataset names no classes (metainfo.classes)')
    return len(classes)


def _train_pipeline(pipeline: List[dict], crop_size, stock_pipeline: List[dict]) -> List[dict]:
    """The dataset's training pipeline, cropping to the stock model's input size (the datasets'
    crops are stacked into one batch) and making the targets the stock model needs."""
    pipeline = copy.deepcopy(pipeline)
    for transform in pipeline:
        if transform.get('type') == 'RandomCrop' and crop_size is not None:
            transform['crop_size'] = tuple(crop_size)
    have = {t.get('type') for t in pipeline}
    extra = [
        copy.deepcopy(t)
        for t in stock_pipeline
        if t.get('type') in MODEL_TARGET_TRANSFORMS and t.get('type') not in have
    ]
    pack = next(
        (i for i, t in enumerate(pipeline) if t.get('type') == 'PackSegInputs'), len(pipeline)
    )
    return pipeline[:pack] + extra + pipeline[pack:]


def config_source(
    stock: str, datasets: Dict[str, str], batch_sizes: Optional[Dict[str, int]] = None
) -> str:
    """The source of the CDCL config of ``stock`` over ``datasets``, inheriting ``stock`` as it
    is written (a path relative to the folder the source will be saved in, or ``mmseg::...``).

    Args: as :func:`convert_config`.
    """
    stock_cfg = load_config(stock)
    if 'max_epochs' in stock_cfg.get('train_cfg', {}):
        raise ValueError(
            f'{stock} trains by epochs; DATTrainLoop counts iterations: convert an '
            'iteration-based config (MMSeg 1.x configs are)'
        )
    for name in datasets:
        if not is_identifier(name):
            raise ValueError(
                f'dataset name {name!r}: expected a Python identifier, not a keyword (it names '
                'log keys and metrics, e.g. cityscapes/mIoU, and variables of the config)'
            )
    crop_size = (stock_cfg.model.get('data_preprocessor') or {}).get('size')
    stock_train = (stock_cfg.get('train_dataloader') or {}).get('dataset', {})
    stock_pipeline = stock_train.get('pipeline') or stock_cfg.get('train_pipeline') or []
    batch_sizes = dict(batch_sizes or {})
    unknown = set(batch_sizes) - set(datasets)
    if unknown:
        raise ValueError(
            f'--batch-size names {sorted(unknown)}, not among the datasets {list(datasets)}'
        )
    stock_batch = stock_cfg.train_dataloader.get('batch_size') or 2
    splits, classes, tta = {}, {}, {}
    for name, path in datasets.items():
        cfg = load_config(path)
        if cfg.get('tta_pipeline') is not None:
            tta[name] = cfg.tta_pipeline
        train, val = _dataset(cfg, 'train_dataloader', path), _dataset(cfg, 'val_dataloader', path)
        if train is None or val is None:
            raise ValueError(
                f'{path} (dataset {name}) has no train_dataloader.dataset and '
                'val_dataloader.dataset: expected an MMSeg dataset config such as '
                'mmseg::_base_/datasets/cityscapes.py'
            )
        test = _dataset(cfg, 'test_dataloader', path) or val
        if 'pipeline' in train:
            train['pipeline'] = _train_pipeline(train['pipeline'], crop_size, stock_pipeline)
        classes[name] = num_classes(train, path)
        splits[name] = dict(train=train, val=val, test=test)

    names = list(datasets)
    loader = stock_cfg.train_dataloader
    evaluator = stock_cfg.get('val_evaluator') or {}
    iou_metrics = (
        evaluator.get('iou_metrics', ['mIoU']) if isinstance(evaluator, dict) else ['mIoU']
    )
    header = [
        f'CDCL (DSBN + DAT) of {osp.basename(stock)}',
        'over ' + ' + '.join(f'{n} ({classes[n]} classes)' for n in names) + '.',
        'Written by tools/convert_config.py from',
        f'  model, schedule, optimizer and runtime: {stock}',
        *[f'  {n}: {datasets[n]}' for n in names],
        f"Training crops are the stock model's input size {tuple(crop_size or ())}: the "
        "datasets' crops",
        'are stacked into one batch.',
    ]
    lines = [
        *map(comment, header),
        f'_base_ = [{py_literal(stock)}]',
        "custom_imports = dict(imports=['mmseg_cdcl'], allow_failed_imports=False)",
        f"model = dict(type='CDCLEncoderDecoder', dataset_names={py_literal(names)}, "
        f'num_classes={[classes[n] for n in names]!r})',
        "train_cfg = dict(type='DATTrainLoop')",
        "visualizer = dict(type='CDCLSegLocalVisualizer')",
        "default_hooks = dict(checkpoint=dict(backend_args=dict(backend='cdcl_atomic_local')))",
        # the stock config's own hooks kept; checkpoints' datasets by name (their meta too),
        # mmengine's checkpoints under torch's safe loader for the run's loads only
        'custom_hooks = '
        + py_literal(
            [
                *[
                    h.to_dict() if hasattr(h, 'to_dict') else h
                    for h in stock_cfg.get('custom_hooks') or []
                ],
                dict(type='CheckpointDatasetsHook'),
                dict(type='CheckpointAllowListHook'),
            ]
        ),
        '',
        '# Each dataset with its own pipeline.',
    ]
    for name in names:
        for split, dataset in splits[name].items():
            lines.append(f'{name}_{split} = {py_literal(dataset)}')
    sizes = {n: batch_sizes.get(n, stock_batch) for n in names}
    workers = dict(
        num_workers=loader.get('num_workers', 2),
        persistent_workers=loader.get('persistent_workers', True),
    )

    def multi(split):
        return (
            "dict(type='CDCLMultiDataset', datasets=dict("
            + ', '.join(f'{n}={n}_{split}' for n in names)
            + '))'
        )

    lines += [
        '',
        '# One batch of every dataset per iteration (DAT), batch sizes per dataset and process.',
        f'train_dataloader = dict(_delete_=True, batch_size=None, {py_literal(workers)[5:-1]}, '
        "sampler=dict(type='InfiniteSampler', shuffle=True), "
        f"batch_sampler=dict(type='MultiDatasetSampler', batch_sizes={py_literal(sizes)}), "
        f'dataset={multi("train")})',
        f'val_dataloader = dict(_delete_=True, batch_size=1, {py_literal(workers)[5:-1]}, '
        "sampler=dict(type='DefaultSampler', shuffle=False), "
        f'dataset={multi("val")})',
        f'test_dataloader = dict(_delete_=True, batch_size=1, {py_literal(workers)[5:-1]}, '
        "sampler=dict(type='DefaultSampler', shuffle=False), "
        f'dataset={multi("test")})',
        '# Each dataset scored in its own label space, and the mean over datasets (mIoU).',
        "val_evaluator = dict(_delete_=True, type='MultiDatasetIoUMetric', "
        f'iou_metrics={py_literal(iou_metrics)})',
        'test_evaluator = val_evaluator',
    ]
    if set(tta) == set(names):
        lines += [
            "# tools/test.py --tta: each dataset's views, as its dataset config defines them.",
            'tta_pipeline = dict(_delete_=True, '
            + ', '.join(f'{n}={py_literal(tta[n])}' for n in names)
            + ')',
            "tta_model = dict(type='CDCLTTAModel')",
        ]
    else:
        lines.append(
            comment(
                'No tta_pipeline: the dataset configs of '
                f'{sorted(set(names) - set(tta))} define none (tools/test.py --tta).'
            )
        )
    source, _ = FormatCode(
        '\n'.join(lines) + '\n', style_config=dict(based_on_style='pep8', column_limit=100)
    )
    return source


def convert_config(
    stock: str, datasets: Dict[str, str], batch_sizes: Optional[Dict[str, int]] = None
) -> Config:
    """The CDCL config of a stock MMSeg config over several datasets.

    Args:
        stock (str): A single-dataset, iteration-based MMSeg config: a path or ``mmseg::...``.
        datasets (dict[str, str]): Dataset name (a Python identifier: it names log keys and
            metrics) to its MMSeg dataset config (path or ``mmseg::...``), in dataset order.
        batch_sizes (dict[str, int], optional): Images of a dataset per iteration and process;
            default: the stock config's batch size.

    Returns:
        Config: The merged config, ready for ``Runner.from_cfg``; its ``text`` is the source
        that inherits ``stock`` (what ``tools/convert_config.py`` writes).
    """
    source = config_source(stock, datasets, batch_sizes)
    # Loaded from a temporary file: a local stock path is made absolute there so that it
    # resolves from the temporary folder; ``text`` keeps the path as given.
    base = stock if '::' in stock else osp.abspath(stock)
    loadable = _with_base(source, base)
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'cdcl_config.py')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(loadable)
        cfg = Config.fromfile(path)
    return Config(cfg.to_dict(), cfg_text=source, env_variables=cfg.env_variables)


def _with_base(source: str, base: str) -> str:
    """``source`` inheriting ``base`` instead (its ``_base_`` statement replaced)."""
    node = next(
        n
        for n in ast.parse(source).body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', None) == '_base_'
    )
    lines = source.split('\n')
    lines[node.lineno - 1 : node.end_lineno] = [f'_base_ = [{py_literal(base)}]']
    return '\n'.join(lines)
