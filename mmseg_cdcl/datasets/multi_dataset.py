"""Several segmentation datasets behind one loader, each sample tagged with its dataset."""
from typing import Dict, List, Union

from mmengine.dataset import BaseDataset, ConcatDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
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

    Example:
        >>> train_dataloader = dict(dataset=dict(
        ...     type='MultiDataset',
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

    def __init__(self, datasets: Dict[str, Union[dict, BaseDataset]], lazy_init: bool = False):
        if not isinstance(datasets, dict) or not datasets:
            raise TypeError('MultiDataset.datasets must be a non-empty dict of datasets by '
                            f'name, got {type(datasets).__name__}')
        self.dataset_names: List[str] = list(datasets)
        # Built lazily so that full_init can name a dataset that finds no samples.
        datasets = [dict(d, lazy_init=True) if isinstance(d, dict) else d
                    for d in datasets.values()]
        super().__init__(datasets, lazy_init=True,
                         ignore_keys=['classes', 'palette', 'label_map', 'reduce_zero_label'])
        self._metainfo = dict(
            classes=self.datasets[0].metainfo.get('classes'),
            palette=self.datasets[0].metainfo.get('palette'),
            dataset_names=list(self.dataset_names),
            datasets={name: dict(d.metainfo, ignore_index=getattr(d, 'ignore_index', 255))
                      for name, d in zip(self.dataset_names, self.datasets)})
        if not lazy_init:
            self.full_init()

    def full_init(self):
        if self._fully_initialized:
            return
        for name, dataset in zip(self.dataset_names, self.datasets):
            try:
                dataset.full_init()
            except ValueError as e:  # mmengine fails serialising an empty list: say why
                if dataset.data_list:
                    raise
                raise ValueError(self._empty(name, dataset)) from e
            if len(dataset) == 0:
                raise ValueError(self._empty(name, dataset))
        super().full_init()

    @staticmethod
    def _empty(name, dataset) -> str:
        return (f"MultiDataset: dataset '{name}' ({type(dataset).__name__}) found no samples "
                f'under data_root={dataset.data_root!r}, data_prefix={dataset.data_prefix}')

    def __getitem__(self, idx: int) -> dict:
        dataset_idx, _ = self._get_ori_dataset_idx(idx)
        data = super().__getitem__(idx)
        tag = dict(dataset_idx=dataset_idx, dataset_name=self.dataset_names[dataset_idx])
        samples = data['data_samples']
        for sample in samples if isinstance(samples, list) else [samples]:  # lists under TTA
            sample.set_metainfo(tag)
        return data

    def dataset_range(self, dataset_idx: int) -> range:
        """The indices of dataset ``dataset_idx``'s samples in this dataset."""
        self.full_init()
        start = self.cumulative_sizes[dataset_idx - 1] if dataset_idx else 0
        return range(start, self.cumulative_sizes[dataset_idx])
