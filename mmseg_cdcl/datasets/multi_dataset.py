"""Several segmentation datasets behind one loader, each sample tagged with its dataset."""

import os.path as osp
import random
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset, ConcatDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS
from PIL import Image

# The unsigned view of signed labels by item size, in which negative labels are out of range.
UNSIGNED = {size: np.dtype(f'u{size}') for size in (1, 2, 4, 8)}
# PIL modes of single-channel images wider than a byte (16-bit PNGs open as 'I;16').
WIDE_MODES = ('I', 'F', 'I;16', 'I;16L', 'I;16B', 'I;16N', 'I;32', 'I;32L', 'I;32B')


def seed_pipeline(seed: int) -> None:
    """Seed the random numbers a data pipeline draws from: python's, numpy's and torch's CPU
    generator (not torch.manual_seed, which would also reseed every CUDA device and, without
    CUDA, record a lazy call with its stack every sample)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)


def check_image_label_pairs(name: str, dataset: BaseDataset) -> None:
    """Every local image has a label file of its size, both readable, and no label value
    changes when loaded as a byte; raise naming the first file that fails.

    Reads file headers, and the whole of label files wider than 8 bits (PIL modes ``I;16``,
    ``I``, ``F``): MMSeg's ``LoadAnnotations`` casts labels to uint8, so a 16-bit 257 would
    load as class 1 and a 32-bit -1 as 255, silently. A wide file whose values all lie in
    0-255 loads as it reads and passes.
    """
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        img, label = info.get('img_path'), info.get('seg_map_path')
        if img is None or label is None or '://' in img:
            continue
        if not osp.isfile(label):
            raise FileNotFoundError(f"dataset '{name}': image {img} has no label file {label}")
        img_size, _ = _read_header(name, img)
        label_size, wrapped = _read_header(name, label, label=True)
        if img_size != label_size:
            raise ValueError(
                f"dataset '{name}': image {img} is {img_size[0]}x{img_size[1]} "
                f'(WxH) but its label {label} is {label_size[0]}x{label_size[1]}'
            )
        if wrapped:
            raise ValueError(
                f"dataset '{name}': label file {label} holds values {wrapped[:10]} outside the "
                f"bytes 0-255; MMSeg's LoadAnnotations casts labels to uint8, so {wrapped[0]} "
                f'would load as {np.array(wrapped[0]).astype(np.uint8)}: expected class ids '
                'and ignore index in 0-255'
            )


def _read_header(name: str, path: str, label: bool = False) -> Tuple[tuple, list]:
    """The (W, H) of image ``path`` and, for a label file wider than 8 bits, its values that
    a uint8 cast changes."""
    try:
        with Image.open(path) as f:
            if not (label and f.mode in WIDE_MODES):
                return f.size, []
            values = np.unique(np.asarray(f))
    except (OSError, ValueError) as e:
        raise ValueError(f"dataset '{name}': cannot read {path}: {e}") from e
    return f.size, values[values != values.astype(np.uint8)].tolist()


def _before_mapping(path: str, values: list, meta: dict) -> str:
    """`` (file values [21] before reduce_zero_label)``: the values in label file ``path``
    that MMSeg's ``LoadAnnotations`` turns into ``values`` under the dataset's
    ``reduce_zero_label`` and ``label_map``; empty without either, or when none does."""
    mappings = [key for key in ('reduce_zero_label', 'label_map') if meta.get(key)]
    if not mappings or not osp.isfile(path):
        return ''
    loaded = LoadAnnotations()(
        dict(
            seg_map_path=path,
            seg_fields=[],
            label_map=meta.get('label_map'),
            reduce_zero_label=meta.get('reduce_zero_label', False),
        )
    )['gt_seg_map']
    with Image.open(path) as f:
        raw = np.asarray(f)
    if raw.shape != loaded.shape:  # a colour label file: no value per pixel to name
        return ''
    file_values = np.unique(raw[np.isin(loaded, values)]).tolist()
    if not file_values:  # a later transform made them
        return ''
    return f' (file values {file_values[:10]} before {" and ".join(mappings)})'


@DATASETS.register_module(name='CDCLMultiDataset')  # and 'MultiDataset': datasets/__init__
class MultiDataset(ConcatDataset):
    """Named MMSeg datasets concatenated for Cross-Dataset Collaborative Learning.

    Each dataset keeps its own pipeline, label space (classes, palette) and ignore index. Every
    sample's data sample carries ``dataset_idx`` (the dataset's position) and ``dataset_name``
    in its metainfo, which ``CDCLEncoderDecoder`` routes by. ``metainfo`` holds
    ``dataset_names`` and each dataset's metainfo (with its ``ignore_index``) under
    ``datasets``, and, for MMSeg tools that
    expect one label space, the first dataset's ``classes`` and ``palette``.

    Args:
        datasets (dict[str, dict | BaseDataset]): Datasets by name, in dataset index order.
        lazy_init (bool): Load annotations only when first needed. Defaults to False.
        pipeline (dict[str, list], optional): A pipeline per dataset name replacing that
            dataset's own: MMSeg's ``tools/test.py --tta`` sets it to the config's
            ``tta_pipeline``, which for a MultiDataset is one pipeline per dataset, e.g.
            ``tta_pipeline = dict(cityscapes=[...], bdd100k=[...])``. Defaults to None.
        check_files (bool): Before training, check that every image has its label file, that
            both open, that their sizes agree, and that label files wider than 8 bits hold
            only values 0-255, which MMSeg's uint8 labels keep (reads file headers, and all of
            such wide label files). False skips all of it, so a 16-bit label 257 would load as
            class 1. Defaults to True.

    Example:
        >>> train_dataloader = dict(dataset=dict(
        ...     type='CDCLMultiDataset',
        ...     datasets=dict(
        ...         cityscapes=dict(type='CityscapesDataset', data_root='data/cityscapes',
        ...                         data_prefix=dict(img_path='leftImg8bit/train',
        ...                                          seg_map_path='gtFine/train'),
        ...                         pipeline=train_pipeline),
        ...         bdd100k=dict(type='BDD100KDataset', data_root='data/bdd100k',
        ...                      data_prefix=dict(img_path='images/10k/train',
        ...                                       seg_map_path='labels/sem_seg/masks/train'),
        ...                      pipeline=train_pipeline))))
    """

    def __init__(
        self,
        datasets: Dict[str, Union[dict, BaseDataset]],
        lazy_init: bool = False,
        check_files: bool = True,
        pipeline: Optional[Dict[str, list]] = None,
    ):
        if not isinstance(datasets, dict) or not datasets:
            raise TypeError(
                'MultiDataset.datasets must be a non-empty dict of datasets by '
                f'name, got {type(datasets).__name__}'
            )
        self.dataset_names: List[str] = list(datasets)
        if pipeline is not None:
            datasets = self._with_pipelines(datasets, pipeline)
        self.check_files = check_files
        # Built lazily so that full_init can name a dataset that finds no samples.
        datasets = [
            dict(d, lazy_init=True) if isinstance(d, dict) else d for d in datasets.values()
        ]
        super().__init__(
            datasets,
            lazy_init=True,
            ignore_keys=['classes', 'palette', 'label_map', 'reduce_zero_label'],
        )
        self._metainfo = dict(
            classes=self.datasets[0].metainfo.get('classes'),
            palette=self.datasets[0].metainfo.get('palette'),
            dataset_names=list(self.dataset_names),
            datasets={
                name: dict(d.metainfo, ignore_index=getattr(d, 'ignore_index', 255))
                for name, d in zip(self.dataset_names, self.datasets)
            },
        )
        # By dataset index: what _check_labels compares every loaded label with.
        self._label_spaces = list(self._metainfo['datasets'].items())
        if not lazy_init:
            self.full_init()

    def _with_pipelines(self, datasets: dict, pipelines) -> dict:
        """``datasets`` (configs) with the pipelines given by name."""
        if not isinstance(pipelines, dict) or set(pipelines) != set(datasets):
            raise ValueError(
                'MultiDataset.pipeline must be a dict of one pipeline per dataset '
                f'{self.dataset_names}, each dataset with its own scales (e.g. '
                'tta_pipeline=dict('
                + ', '.join(f'{n}=[...]' for n in self.dataset_names)
                + ') for tools/test.py --tta), got '
                + (
                    f'the datasets {sorted(pipelines)}'
                    if isinstance(pipelines, dict)
                    else f'a {type(pipelines).__name__}'
                    + (
                        " (MMSeg's init_model and MMSegInferencer give the config they are "
                        'given the inference pipeline of a CDCL model: build datasets from the '
                        'config file)'
                        if isinstance(pipelines, list)
                        else ''
                    )
                )
            )
        replaced = {}
        for name, dataset in datasets.items():
            if not isinstance(dataset, dict):
                raise TypeError(
                    f"MultiDataset.pipeline: dataset '{name}' is built already; expected its config"
                )
            replaced[name] = dict(dataset, pipeline=pipelines[name])
        return replaced

    def full_init(self):
        if self._fully_initialized:
            return
        for name, dataset in zip(self.dataset_names, self.datasets):
            try:
                dataset.full_init()
            except FileNotFoundError as e:
                raise FileNotFoundError(
                    f"MultiDataset: dataset '{name}' ({type(dataset).__name__}): {e}; check its "
                    f'data_root={dataset.data_root!r} and data_prefix (README, "Data '
                    'preparation")'
                ) from e
            except ValueError as e:  # mmengine fails serialising an empty list: say why
                if dataset.data_list:
                    raise
                raise ValueError(self._empty(name, dataset)) from e
            if len(dataset) == 0:
                raise ValueError(self._empty(name, dataset))
            if self.check_files:
                check_image_label_pairs(name, dataset)
        super().full_init()

    @staticmethod
    def _empty(name, dataset) -> str:
        return (
            f"MultiDataset: dataset '{name}' ({type(dataset).__name__}) found no samples "
            f'under data_root={dataset.data_root!r}, data_prefix={dataset.data_prefix}'
        )

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> dict:
        """The sample at index ``key``, or at ``key[0]`` with its random augmentations drawn
        from seed ``key[1]`` (the keys ``MultiDatasetSampler`` yields)."""
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: List[Union[int, Tuple[int, int]]]) -> List[dict]:
        """The samples at ``keys``; torch's loader fetches a batch with one call. Labels are
        checked once all are loaded: back to back, the check's code stays in the CPU's caches,
        which loading a sample empties (~10 µs a sample instead of ~30)."""
        keys = [key if isinstance(key, tuple) else (key, None) for key in keys]
        # Each seeded sample reseeds the generators. Torch's CPU one (dropout's) is given back
        # after the batch; python's and numpy's, which only data transforms draw from, stay as
        # the last sample left them (restoring numpy's state would cost ~80 µs).
        cpu = torch.default_generator
        state = cpu.get_state() if any(seed is not None for _, seed in keys) else None
        try:
            loaded = [self._load(*key) for key in keys]
        finally:
            if state is not None:
                cpu.set_state(state)
        for dataset_idx, data in loaded:
            samples = data['data_samples']
            for sample in samples if isinstance(samples, list) else [samples]:  # lists under TTA
                # set_field: set_metainfo would deep-copy these two immutable values every sample.
                sample.set_field(dataset_idx, 'dataset_idx', field_type='metainfo')
                sample.set_field(
                    self.dataset_names[dataset_idx], 'dataset_name', field_type='metainfo'
                )
                self._check_labels(sample, dataset_idx)
        return [data for _, data in loaded]

    def _load(self, idx: int, seed: Optional[int]) -> Tuple[int, dict]:
        """The dataset index and sample ``idx``, augmented from ``seed`` unless None."""
        dataset_idx, sample_idx = self._get_ori_dataset_idx(idx)
        dataset = self.datasets[dataset_idx]
        try:
            if seed is not None:
                seed_pipeline(seed)
            return dataset_idx, dataset[sample_idx]
        except Exception as e:
            info = dataset.get_data_info(sample_idx)
            raise RuntimeError(
                f"loading sample {sample_idx} of dataset '{self.dataset_names[dataset_idx]}' "
                f'failed: image {info.get("img_path")}, label {info.get("seg_map_path")}: '
                f'{type(e).__name__}: {e}'
            ) from e

    def _check_labels(self, sample, dataset_idx: int) -> None:
        """Every label is a class of the sample's dataset or its ignore index."""
        if 'gt_sem_seg' not in sample:
            return
        name, meta = self._label_spaces[dataset_idx]
        num_classes, ignore = len(meta['classes']), meta['ignore_index']
        label = sample.gt_sem_seg.data.numpy()
        kind = label.dtype.kind
        if kind == 'i':  # negative ids become huge, so one comparison finds them
            label = label.view(UNSIGNED[label.itemsize])
        elif kind not in 'ub':
            raise TypeError(
                f"label file {sample.seg_map_path} of dataset '{name}' gives labels "
                f'of dtype {label.dtype}: expected integer class ids'
            )
        # This runs on every loaded sample: two counting passes, the cheapest vectorised test
        # measured (the label is int64, 8 bytes a pixel); the values only for a bad label.
        outside = np.count_nonzero(label >= num_classes)
        if outside and ignore >= num_classes:  # else the exact test below tells
            outside -= np.count_nonzero(label == ignore)
        if not outside:
            return
        values = [
            v
            for v in torch.unique(sample.gt_sem_seg.data).tolist()
            if not (0 <= v < num_classes or v == ignore)
        ]
        if not values:  # a negative ignore index, seen as huge above
            return
        raise ValueError(
            f"label file {sample.seg_map_path} of dataset '{name}' holds values {values[:10]}"
            f'{_before_mapping(sample.seg_map_path, values, meta)}: expected classes '
            f'0-{num_classes - 1} or ignore index {ignore}'
        )

    def dataset_range(self, dataset_idx: int) -> range:
        """The indices of dataset ``dataset_idx``'s samples in this dataset."""
        self.full_init()
        start = self.cumulative_sizes[dataset_idx - 1] if dataset_idx else 0
        return range(start, self.cumulative_sizes[dataset_idx])
