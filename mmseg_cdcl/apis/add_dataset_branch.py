"""A branch for a new camera from its unlabelled images: a CDCL model of N datasets becomes one
of N+1 (config + checkpoint).

The new dataset's branches (DSBN, classifiers) start as a copy of a named dataset's, or of the
one the images' DSBN statistics choose (:class:`BranchSelector`, as ``default_dataset='auto'``
chooses per image), and its DSBN statistics are re-estimated on the images
(:mod:`mmseg_cdcl.models.utils.branch_adaptation`: AdaBN, UBNA's mixing, TENT).
``tools/add_dataset_branch.py`` is its command line.

Example:
    >>> from mmseg_cdcl.apis import add_dataset_branch, init_cdcl_model
    >>> config, ckpt, info = add_dataset_branch(
    ...     'configs/demo/cdcl_cityscapes_bdd.py', 'iter_240.pth', name='camvid',
    ...     images='data/camvid/images/train', out_dir='work_dirs/camvid_branch')
    >>> model = init_cdcl_model(config, ckpt, dataset='camvid')  # or 'auto', 'ensemble'
"""

import copy
import os
import os.path as osp
import time
from typing import List, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from ..datasets.transforms.dataset_test_pipelines import dataset_test_pipeline
from ..models.segmentors.cdcl_encoder_decoder import CDCLEncoderDecoder
from ..models.utils.branch_adaptation import (
    branch_statistics,
    entropy_tuning,
    mix_statistics,
    reestimate_statistics,
)
from ..utils.config_literals import dump_config, is_identifier
from .checkpoint import load_cdcl_checkpoint

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
# Keys of a config dict that hold one value per dataset, in dataset order.
_PER_DATASET = ('num_classes', 'ignore_index', 'loss_weights')


def check_branch_name(name: str) -> str:
    """``name`` if it can name a new dataset: a dataset name of ``CDCLEncoderDecoder`` (not
    empty, no ``.`` or ``/``, not ``auto`` or ``ensemble``) that is a Python identifier, not a
    keyword. MMEngine writes identifier keys unquoted and others between quotes it does not
    escape (``Config.pretty_text``, which tools/train.py and tools/test.py log and save):
    the config's keys named after the dataset (``label_space.mapping``,
    ``dataset_test_pipelines``) must be identifiers to survive it.

    Raises:
        ValueError: naming the value and what is expected.
    """
    CDCLEncoderDecoder._checked_names([name])
    if not is_identifier(name):
        raise ValueError(
            f'dataset name {name!r}: expected a Python identifier that is not a keyword '
            "(letters, digits and '_', e.g. camvid_night): MMEngine writes the config keys "
            'named after it unescaped when tools/train.py or tools/test.py save the config'
        )
    return name


def added_dataset_cfg(cfg: Config, name: str, source: str) -> Config:
    """The config of ``cfg``'s model with one more dataset, ``name``, whose branches are
    ``source``'s: its ``dataset_names``, every ``num_datasets`` and per-dataset list
    (``num_classes``, ``ignore_index``, ``loss_weights``) and its label space's mapping extended
    by ``source``'s value; ``branch_map`` dropped (the new checkpoint has every dataset). The
    dataloaders do not list ``name`` (it has no labels): its test pipeline, ``source``'s, is
    ``dataset_test_pipelines[name]``."""
    cfg = copy.deepcopy(cfg)
    names = list(cfg.model.dataset_names)
    d = names.index(source)

    def extend(node):
        if isinstance(node, (list, tuple)):
            return type(node)(extend(v) for v in node)
        if not isinstance(node, dict):
            return node
        node = {k: extend(v) for k, v in node.items()}
        if node.get('num_datasets') == len(names):
            node['num_datasets'] = len(names) + 1
        for key in _PER_DATASET:
            value = node.get(key)
            if isinstance(value, (list, tuple)) and len(value) == len(names):
                node[key] = list(value) + [value[d]]
        return node

    model = extend(cfg.model.to_dict())
    model['dataset_names'] = names + [name]
    model.pop('branch_map', None)
    space = model.get('label_space')
    for key in ('mapping', 'dataset_classes'):
        if space is not None and source in (space.get(key) or {}):
            space[key][name] = copy.deepcopy(space[key][source])
    cfg.model = model
    pipelines = dict(cfg.get('dataset_test_pipelines') or {})
    pipelines[name] = dataset_test_pipeline(cfg, source)
    cfg.dataset_test_pipelines = pipelines
    return cfg


def image_files(images: Union[str, Sequence[str]]) -> List[str]:
    """The image files of a folder (walked, sorted; other files skipped) or a list of files.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it holds no image.
    """
    if not isinstance(images, str):
        files = list(images)
    elif not osp.isdir(images):
        raise FileNotFoundError(f'image folder {images} does not exist')
    else:
        files = sorted(
            osp.join(root, f)
            for root, _, names in os.walk(images)
            for f in names
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
    if not files:
        raise ValueError(f'no images (files ending in {", ".join(IMAGE_EXTENSIONS)}) in {images}')
    return files


def preprocessed_batches(
    model, pipeline: list, files: Sequence[str], batch_size: int
) -> List[torch.Tensor]:
    """The images through a test pipeline (without its annotation loading) and the model's
    data preprocessor, in batches of one image size with at least two images each.

    Raises:
        ValueError: an image cannot be read (naming it), or a size has a single image.
    """
    pipeline = Compose([t for t in pipeline if t.get('type') != 'LoadAnnotations'])
    by_shape = {}
    for f in files:
        try:
            data = pipeline(dict(img_path=f))
        except Exception as error:  # mmcv's decoders raise various types on corrupt files
            raise ValueError(f'cannot read image {f}: {error}') from error
        if data is None or data.get('inputs') is None:
            raise ValueError(f'cannot read image {f}')
        by_shape.setdefault(tuple(data['inputs'].shape), []).append(data)
    batches = []
    for shape, items in by_shape.items():
        if len(items) < 2:
            raise ValueError(
                f'only one image ({items[0]["data_samples"].img_path}) is {shape[1]}x{shape[2]} '
                'after the test pipeline: re-estimating BatchNorm statistics needs at least '
                'two images of a size'
            )
        chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
        if len(chunks) > 1 and len(chunks[-1]) < 2:
            chunks[-2] += chunks.pop()
        for chunk in chunks:
            data = model.data_preprocessor(
                dict(
                    inputs=[c['inputs'] for c in chunk],
                    data_samples=[c['data_samples'] for c in chunk],
                ),
                training=False,
            )
            batches.append(data['inputs'])
    return batches


def _check_out_dir(out_dir: str, name: str, overwrite: bool) -> Tuple[str, str]:
    paths = osp.join(out_dir, f'{name}.py'), osp.join(out_dir, f'{name}.pth')
    for path in paths:
        if osp.exists(path) and not overwrite:
            raise FileExistsError(f'{path} exists: choose another --out-dir, or overwrite')
    return paths


def add_dataset_branch(
    config: Union[str, Config],
    checkpoint: str,
    name: str,
    images: Union[str, Sequence[str]],
    out_dir: str,
    source: str = 'auto',
    prior_images: float = 0.0,
    tent_steps: int = 0,
    tent_lr: float = 1e-3,
    batch_size: int = 8,
    device: str = 'cpu',
    overwrite: bool = False,
) -> Tuple[str, str, dict]:
    """Write ``<out_dir>/<name>.py`` and ``<out_dir>/<name>.pth``: the model of ``config`` and
    ``checkpoint`` with one more dataset, ``name``, whose branches start as ``source``'s and
    whose DSBN statistics are re-estimated on ``images``. Every input is checked before
    anything is written.

    Args:
        config (str | Config): The CDCL model's config.
        checkpoint (str): Its checkpoint.
        name (str): The new dataset (not one of the model's).
        images (str | Sequence[str]): A folder of the new camera's images (walked), or files.
        out_dir (str): Folder of the new config and checkpoint.
        source (str): The dataset whose branches the new one starts from, or ``'auto'``: the
            one nearest to the images' statistics at the first DSBN layer, averaged over them.
        prior_images (float): UBNA's mixing: the source's statistics count as this many images
            against the images' own. Defaults to 0 (AdaBN: the images' statistics alone).
        tent_steps (int): TENT passes over the images tuning the branch's γ/β by entropy
            minimisation (Adam, ``tent_lr``) before the statistics are re-estimated. Defaults
            to 0.
        batch_size (int): Images per forward.
        device (str): Where the model runs.
        overwrite (bool): Replace existing output files.

    Returns:
        tuple: The new config's and checkpoint's paths, and what was done (``source``,
        ``distances`` to each branch when chosen, ``num_images``, ``seconds``, ...).

    Raises:
        ValueError: ``name`` is a dataset of the model or not a valid name
            (:func:`check_branch_name`), ``source`` is not a dataset of the model, an image
            cannot be read, or the checkpoint is not one of the config's model.
        FileNotFoundError: the image folder or the checkpoint does not exist.
        FileExistsError: an output file exists (without ``overwrite``).
    """
    start = time.time()
    check_branch_name(name)
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    config_name = config if isinstance(config, str) else 'the config'
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    names = list(cfg.model.get('dataset_names') or [])
    if not names:
        raise ValueError(f'{config_name} is not a CDCL config: its model has no dataset_names')
    if name in names:
        raise ValueError(
            f"'{name}' is already a dataset of the model {names}: choose a new name "
            '(an existing branch trains further on its labelled data instead)'
        )
    MODELS.get(cfg.model.type)._checked_names(names + [name])
    if source != 'auto' and source not in names:
        raise ValueError(f"source '{source}' is not a dataset of the model {names}, nor 'auto'")
    paths = _check_out_dir(out_dir, name, overwrite)
    files = image_files(images)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')

    model = MODELS.build(copy.deepcopy(cfg.model)).to(device).eval()
    try:
        ckpt = load_cdcl_checkpoint(model, checkpoint, strict=True)
    except (RuntimeError, ValueError, KeyError) as error:
        detail = ' '.join(str(error).split())  # mmengine lists every missing key
        raise ValueError(
            f'{checkpoint} is not a checkpoint of the model of {config_name} '
            f'(datasets {names}): ' + (detail if len(detail) < 500 else detail[:500] + ' ...')
        ) from error

    info = dict(
        name=name,
        num_images=len(files),
        images=(osp.abspath(images) if isinstance(images, str) else None),
    )
    if source == 'auto':
        # The images prepared as auto prepares an image of unknown source: the first
        # dataset's test pipeline.
        batches = preprocessed_batches(
            model, dataset_test_pipeline(cfg, names[0]), files, batch_size
        )
        with torch.no_grad():
            distances = torch.cat(
                [model.branch_selector.distances(model, b.to(device)) for b in batches]
            ).mean(0)
        source = names[int(distances.argmin())]
        info['distances'] = {n: round(float(v), 4) for n, v in zip(names, distances)}
    info['source'] = source
    batches = [
        b.to(device)
        for b in preprocessed_batches(model, dataset_test_pipeline(cfg, source), files, batch_size)
    ]

    new_cfg = added_dataset_cfg(cfg, name, source)
    new_model = MODELS.build(copy.deepcopy(new_cfg.model)).to(device)
    load_cdcl_checkpoint(new_model, checkpoint, branch_map={name: source}, strict=True)
    d = len(names)
    prior = branch_statistics(new_model, d)
    if tent_steps:
        info['tent_entropy'] = entropy_tuning(new_model, d, batches, tent_steps, tent_lr)
    start_pass = time.time()
    reestimate_statistics(new_model, d, batches)
    info['pass_seconds'] = round(time.time() - start_pass, 2)
    if prior_images:
        info['source_weight'] = mix_statistics(new_model, d, prior, len(files), prior_images)
    info.update(
        prior_images=prior_images, tent_steps=tent_steps, seconds=round(time.time() - start, 2)
    )

    meta = copy.deepcopy(ckpt.get('meta') or {})
    dataset_meta = copy.deepcopy(meta.get('dataset_meta') or {})
    dataset_meta['dataset_names'] = names + [name]
    datasets = dataset_meta.setdefault('datasets', {})
    if source in datasets:
        datasets[name] = copy.deepcopy(datasets[source])
    meta.update(dataset_meta=dataset_meta, added_branch=info)
    new_model.dataset_meta = dataset_meta  # the class names its state dict states
    os.makedirs(out_dir, exist_ok=True)
    header = [
        f'The model of {config_name} with one more dataset, {name}, whose branches start as',
        f'those of {source}: written by tools/add_dataset_branch.py (docs/new_camera.md).',
    ]
    dump_config(new_cfg, paths[0], header)
    torch.save(dict(state_dict=new_model.state_dict(), meta=meta), paths[1])
    return paths[0], paths[1], info
