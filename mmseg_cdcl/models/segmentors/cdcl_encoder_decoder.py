"""The CDCL segmentor: one network, one branch per dataset, L = Σ_i w_i·L_i."""
import warnings
from contextlib import ExitStack, contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.structures import PixelData
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import add_prefix
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...datasets.transforms import inference_pipeline
from ..decode_heads import (
    build_dataset_aware_head,
    check_dataset_aware_head,
    head_dataset,
    is_dataset_aware,
)
from ..decode_heads.dataset_aware_head import UNCONVERTIBLE
from ..layers import (
    DSBN,
    DatasetAwareModule,
    DatasetBatchTooSmall,
    DatasetBranches,
    DatasetRouting,
    DatasetStatistics,
    dataset_context,
    updated_buffers,
)
from ..utils import BranchSelector, LabelSpace
from ..utils.checkpoint_datasets import (
    branch_patterns,
    branch_sources,
    classifier_misfits,
    fresh_classifiers,
    map_branches,
)
from .unknown_source import ensemble, predict_routes

# default_dataset of images of unknown source: the branch their DSBN statistics match best, or
# all branches' probabilities combined.
AUTO, ENSEMBLE = 'auto', 'ensemble'


@MODELS.register_module()
class CDCLEncoderDecoder(EncoderDecoder):
    """EncoderDecoder trained across datasets (Cross-Dataset Collaborative Learning).

    Any MMSeg model config becomes CDCL by stating its datasets and their classes (the
    conversion form)::

        _base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py']
        model = dict(type='CDCLEncoderDecoder', dataset_names=['cityscapes', 'camvid'],
                     num_classes=[19, 11])

    Every BatchNorm / SyncBN of backbone, neck and heads becomes a DSBN (Dataset-Aware Blocks;
    LayerNorm and GroupNorm stay shared), and every classifier of every head whose classes are
    the model's (``num_classes`` of the decode head) becomes one classifier per dataset; heads
    with other outputs (STDC's 2-class boundary head) are shared. A config with ``num_stages``
    (OCRNet) builds :class:`CDCLCascadeEncoderDecoder`. The paper's configs name the
    Dataset-Aware components instead (``DABResNetV1c``, ``DABPSPHead``, ...), without
    ``num_classes`` here.

    Each sample's dataset comes from its data sample's metainfo: ``dataset_name`` (set by
    ``MultiDataset``) or ``dataset_idx``. Training runs backbone and neck once on the mixed
    batch, DSBN normalising each dataset's samples with its own statistics, then every head once
    per dataset on that dataset's samples, with its classifier, classes and ignore index. It
    returns each dataset's losses as ``'<dataset>.decode.loss_ce'``, ``'<dataset>.aux.loss_ce'``,
    ... scaled by the dataset's weight, so that mmengine's ``parse_losses`` sums exactly
    L = Σ_i w_i·L_i. Prediction routes each sample to its dataset's branch and costs the FLOPs of
    the plain network.

    Args:
        dataset_names (Sequence[str]): Name of each dataset, in dataset index order.
        num_classes (Sequence[int], optional): Classes of each dataset: converts the stock
            model config it is merged onto. Defaults to None (the components are already
            dataset-aware).
        ignore_index (int | Sequence[int], optional): Ignored label, shared or per dataset, of
            the converted heads. Defaults to the heads' (255).
        loss_weights (Sequence[float] | dict, optional): w_i per dataset, as a list or by name.
            Defaults to 1 for every dataset.
        default_dataset (str | int, optional): Dataset of samples without ``dataset_idx``
            (e.g. images given to ``inference_model``): a dataset, ``'auto'`` (per image, the
            branch whose DSBN statistics its features match best) or ``'ensemble'`` (all
            branches' probabilities weighted by those scores). Such results carry
            ``dataset_name`` and ``dataset_scores`` in their metainfo. Defaults to None: such
            samples raise.
        label_space (dict, optional): One output label space (:class:`LabelSpace`): every
            prediction comes out in its classes. A mapping by class names needs the dataset's
            class names: ``label_space.dataset_classes``, else those the checkpoint states
            (or ``dataset_meta['datasets']`` given to the model, or the training data).
        branch_map (dict, optional): Loading a checkpoint of other datasets: for each of the
            model's datasets the checkpoint lacks, the checkpoint dataset whose branches
            (DSBN, classifiers) it starts from (``dict(camvid='cityscapes')``; a classifier of
            other classes starts fresh); with it, the checkpoint's datasets the model lacks
            are left out (``dict(cityscapes='cityscapes')`` loads that one dataset). Defaults
            to None: a checkpoint that states its datasets must have the model's, in any
            order (its branches are loaded by name).
        branch_selection (dict, optional): Arguments of :class:`BranchSelector`.
        **kwargs: Arguments of :class:`mmseg.models.segmentors.EncoderDecoder`. ``test_cfg``
            may set ``unknown_source=True`` (predict every route of every image, for
            ``UnknownSourceMetric``) and ``ensemble_weights='scores'`` or ``'uniform'``.

    Example:
        >>> model = dict(
        ...     type='CDCLEncoderDecoder', dataset_names=['cityscapes', 'bdd100k'],
        ...     backbone=dict(type='DABResNetV1c', num_datasets=2, depth=18, ...),
        ...     decode_head=dict(type='DABPSPHead', num_classes=[19, 19], ...),
        ...     auxiliary_head=dict(type='DABFCNHead', num_classes=[19, 19], ...))
    """
    plain_type = 'EncoderDecoder'  # what export_single_dataset turns it into

    def __new__(cls, *args, **kwargs):
        if cls is CDCLEncoderDecoder and kwargs.get('num_stages') is not None:
            cls = MODELS.get('CDCLCascadeEncoderDecoder')  # a stock cascade config, converted
        return super().__new__(cls)

    def __init__(self,
                 dataset_names: Sequence[str],
                 num_classes: Optional[Sequence[int]] = None,
                 ignore_index: Optional[Union[int, Sequence[int]]] = None,
                 loss_weights: Optional[Union[Sequence[float], Dict[str, float]]] = None,
                 default_dataset: Optional[Union[str, int]] = None,
                 label_space: Optional[dict] = None,
                 branch_selection: Optional[dict] = None,
                 branch_map: Optional[Dict[str, str]] = None,
                 **kwargs):
        # Every refusal that needs only the config comes before the model is built.
        self.dataset_names = self._checked_names(dataset_names)
        if num_classes is not None:
            self._check_convertible(kwargs, num_classes, ignore_index)
        default_dataset = (default_dataset if default_dataset in (None, AUTO, ENSEMBLE)
                           else self.dataset_index(default_dataset, 'default_dataset'))
        self._check_ensemble(default_dataset, label_space, kwargs.get('test_cfg'),
                             _config_classes(num_classes, kwargs))
        branch_selector = BranchSelector(**(branch_selection or {}))
        loss_weights = self._dataset_values(loss_weights, 'loss_weights', default=1.0)
        branch_map = self._checked_branch_map(branch_map)
        super().__init__(**kwargs)
        if num_classes is not None:
            self._make_dataset_aware(kwargs, num_classes, ignore_index)
        self.dataset_ignore_index = self._ignore_indices(ignore_index)
        self.loss_weights = loss_weights
        self.default_dataset = default_dataset
        self._check_branches()
        self._check_ensemble(default_dataset, label_space, self.test_cfg,
                             self.classes_per_dataset())
        self.label_space = None if label_space is None else LabelSpace(
            dataset_names=self.dataset_names, num_classes=self.classes_per_dataset(),
            defer_class_names=True, **label_space)
        # Class names of the datasets, where known: stated in checkpoints, checked at loading.
        self.dataset_classes: Dict[str, Tuple[str, ...]] = dict(
            getattr(self.label_space, 'dataset_classes', {}))
        self.branch_map = branch_map
        self.register_state_dict_post_hook(_state_datasets)
        self.branch_selector = branch_selector
        self._active: Optional[int] = None  # the dataset whose branch runs
        self._aware_modules: Optional[List[DatasetAwareModule]] = None  # found at first use
        self._shared_feats: Optional[list] = None  # [inputs, features] while branches share them
        self._make_statistics_per_dataset()

    @staticmethod
    def _checked_names(names: Sequence[str]) -> Tuple[str, ...]:
        if isinstance(names, str) or not names:
            raise ValueError(f'dataset_names must list the datasets, got {names!r}')
        for name in names:
            if not isinstance(name, str) or not name or '.' in name or '/' in name:
                raise ValueError(f'dataset name {name!r}: expected a non-empty string without '
                                 "'.' or '/' (they separate dataset, head and loss in log keys)")
            if name in (AUTO, ENSEMBLE):
                raise ValueError(f'dataset name {name!r} is reserved: default_dataset={name!r} '
                                 'chooses among the datasets')
        if len(set(names)) != len(names):
            raise ValueError(f'dataset_names={list(names)} names a dataset twice')
        return tuple(names)

    def _checked_branch_map(self, branch_map) -> Optional[Dict[str, str]]:
        if branch_map is None:
            return None
        if not isinstance(branch_map, dict) or not all(
                isinstance(v, str) for v in branch_map.values()):
            raise ValueError(f'branch_map={branch_map!r}: expected a dict from dataset names '
                             "of the model to dataset names of the checkpoint")
        unknown = sorted(set(branch_map) - set(self.dataset_names))
        if unknown:
            raise ValueError(f'branch_map names {unknown}, not datasets of the model '
                             f'{list(self.dataset_names)}')
        return dict(branch_map)

    @property
    def dataset_meta(self) -> Optional[dict]:
        """MMSeg's ``dataset_meta`` (``init_model`` sets the checkpoint's); its
        ``datasets[name]['classes']`` (a ``MultiDataset``'s metainfo) are the datasets'
        class names."""
        return self.__dict__.get('_dataset_meta')

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        datasets = (meta or {}).get('datasets') or {}
        self.set_dataset_classes({name: m.get('classes') for name, m in datasets.items()
                                  if isinstance(m, dict)})
        self.__dict__['_dataset_meta'] = meta

    def set_dataset_classes(self, classes: Dict[str, Optional[Sequence[str]]]) -> None:
        """Learn the class names of datasets (the label space's mappings by class name wait
        for them).

        Raises:
            ValueError: other class names than the model knows, or another number of them.
        """
        known = {}
        for d, name in enumerate(self.dataset_names):
            names = classes.get(name)
            if names is None:
                continue
            names = tuple(names)
            own = self.dataset_classes.get(name)
            if len(names) != self.classes_per_dataset()[d] or own not in (None, names):
                raise ValueError(
                    f"dataset '{name}' has classes {list(names)} here but the model has "
                    + (f'{self.classes_per_dataset()[d]} classes' if own is None else
                       f'{list(own)}'))
            known[name] = names
        self.dataset_classes.update(known)
        if self.label_space is not None:
            self.label_space.set_dataset_classes(known)

    def stated_datasets(self) -> dict:
        """What the model's state dicts state about its datasets (see
        :mod:`mmseg_cdcl.models.utils.checkpoint_datasets`)."""
        classes = self.classes_per_dataset()
        return dict(dataset_names=list(self.dataset_names), datasets={
            name: dict(num_classes=classes[d], ignore_index=self.dataset_ignore_index[d],
                       classes=(list(self.dataset_classes[name]) if name in
                                self.dataset_classes else None))
            for d, name in enumerate(self.dataset_names)})

    def _check_convertible(self, cfgs: dict, num_classes: Sequence[int], ignore_index) -> None:
        """Refuse what CDCL cannot convert before building anything: ``num_classes`` of another
        length than the datasets, heads it cannot make per dataset."""
        if isinstance(num_classes, (int, str)) or len(num_classes) != len(self.dataset_names):
            raise ValueError(f'num_classes={num_classes!r}: expected one class count per '
                             f'dataset {list(self.dataset_names)}')
        classes = _head_classes(cfgs.get('decode_head'))
        for key in ('decode_head', 'auxiliary_head'):
            heads = cfgs.get(key)
            for i, cfg in enumerate(heads if isinstance(heads, list) else [heads]):
                name = f'{key}[{i}]' if isinstance(heads, list) else key
                kind = (cfg or {}).get('type')
                if isinstance(kind, str) and kind in UNCONVERTIBLE:
                    raise ValueError(f'{name} ({kind}) cannot be trained by CDCL: '
                                     f'{UNCONVERTIBLE[kind]}')
                if cfg is not None and cfg.get('num_classes') == classes and \
                        not isinstance(classes, (list, tuple)):  # converted as built below
                    check_dataset_aware_head(cfg, num_classes, ignore_index, name)

    def _check_ensemble(self, default_dataset, label_space: Optional[dict],
                        test_cfg: Optional[dict], classes: Optional[Sequence[int]]) -> None:
        """The ensemble adds the branches' probabilities class by class: their classes must be
        the same, or mapped into one label space."""
        if label_space is not None or classes is None or len(set(classes)) == 1:
            return
        if default_dataset == ENSEMBLE:
            key, instead = "default_dataset='ensemble'", "or use default_dataset='auto'"
        elif (test_cfg or {}).get('unknown_source', False):
            key, instead = 'test_cfg.unknown_source=True (its ensemble route)', ''
        else:
            return
        raise ValueError(
            f"{key} adds the branches' probabilities, but the datasets have other classes "
            f'{dict(zip(self.dataset_names, classes))}: set model.label_space (LabelSpace: one '
            f"output label space, each dataset's classes mapped to it) {instead}".rstrip())

    def heads(self) -> List[nn.Module]:
        """The decode heads (every stage of a cascade) and auxiliary heads."""
        heads = []
        for head in (self.decode_head, getattr(self, 'auxiliary_head', None)):
            heads += list(head) if isinstance(head, nn.ModuleList) else [head] * (head is not None)
        return heads

    def _make_dataset_aware(self, cfgs: dict, num_classes: Sequence[int],
                            ignore_index) -> None:
        """Convert the stock model just built: one classifier per dataset in every head that
        predicts the model's classes, every BatchNorm a DSBN."""
        classes = _head_classes(cfgs['decode_head'])

        def convert(head: nn.Module, cfg: dict, name: str) -> nn.Module:
            if is_dataset_aware(head):
                return head
            if cfg.get('num_classes') != classes:
                print_log(f"CDCL: {name} ({cfg.get('type')}) predicts {cfg.get('num_classes')} "
                          f'classes, not the model\'s {classes}: shared by the datasets',
                          logger='current')
                return head
            return build_dataset_aware_head(cfg, num_classes, ignore_index, name)

        for key in ('decode_head', 'auxiliary_head'):
            cfg, head = cfgs.get(key), getattr(self, key, None)
            if isinstance(head, nn.ModuleList):
                for i, (h, c) in enumerate(zip(head, cfg)):
                    head[i] = convert(h, c, f'{key}[{i}]')
            elif head is not None:
                setattr(self, key, convert(head, cfg, key))
        DSBN.convert_dsbn(self, len(self.dataset_names))
        if not any(isinstance(m, DSBN) for m in self.modules()):
            _warn('CDCL: the model has no BatchNorm, so nothing is dataset-specific but the '
                  'classifiers')

    def _make_statistics_per_dataset(self, size: int = 64) -> None:
        """Every module that updates a buffer from its inputs in training (EMANet's bases)
        becomes one copy per dataset (:class:`DatasetStatistics`), as DSBN makes BatchNorm's
        statistics per dataset. The buffers are found by one training step's forward of two
        ``size`` x ``size`` images, with the model restored afterwards; it runs only if the
        model has buffers besides BatchNorm's. A buffer of a top-level component itself (a
        head, the backbone) cannot be copied without it: the model is warned about by name."""
        aware = [f'{n}.' for n, m in self.named_modules()
                 if isinstance(m, (DatasetAwareModule, _BatchNorm))] + ['data_preprocessor.']
        candidates = [n for n, _ in self.named_buffers() if not n.startswith(tuple(aware))]
        if not candidates:
            return
        samples = []
        for _ in range(2):
            sample = SegDataSample(metainfo=dict(
                dataset_idx=0, img_shape=(size, size), ori_shape=(size, size),
                pad_shape=(size, size), padding_size=[0] * 4))
            sample.gt_sem_seg = PixelData(data=torch.zeros(1, size, size, dtype=torch.long))
            samples.append(sample)
        inputs = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        try:
            updated = updated_buffers(self, lambda: self.loss(inputs, samples), candidates)
        except Exception as e:  # any model's forward: the check is best effort
            _warn(f'CDCL: cannot tell whether the buffers {candidates} are updated from the '
                  f'inputs in training (a training forward of 2 {size}x{size} images raised '
                  f'{type(e).__name__}: {e}); if they are, the datasets share them')
            return
        finally:
            self._aware_modules = None
        components = {'': 'the segmentor', 'backbone': 'the backbone', 'neck': 'the neck'}
        components.update({name: 'a head' for name, m in self.named_modules()
                           if any(m is h for h in self.heads())})
        owners: Dict[str, List[str]] = {}
        for name in updated:
            owner, _, buffer = name.rpartition('.')
            owners.setdefault(owner, []).append(buffer)
        for owner, buffers in owners.items():
            module = self.get_submodule(owner)
            if owner in components:
                _warn(f'CDCL: {owner or "the model"} ({type(module).__name__}) updates its '
                      f'buffers {buffers} from the inputs in training, and as '
                      f'{components[owner]} it cannot be copied per dataset: the datasets share '
                      "them, so one dataset's samples change the forward of another's")
                continue
            parent, _, attr = owner.rpartition('.')
            setattr(self.get_submodule(parent), attr,
                    DatasetStatistics.of(module, len(self.dataset_names)))
            print_log(f'CDCL: {owner} ({type(module).__name__}) updates its buffers {buffers} '
                      'from the inputs in training: one copy per dataset', logger='current')

    def _ignore_indices(self, ignore_index) -> Tuple[int, ...]:
        """Each dataset's ignore index, for heads shared by the datasets."""
        aware = [h for h in self.heads() if is_dataset_aware(h)]
        if aware:
            return tuple(aware[0].dataset_ignore_index)
        if ignore_index is None or isinstance(ignore_index, int):
            ignore_index = [self.decode_head_of_classes().ignore_index if ignore_index is None
                            else ignore_index] * len(self.dataset_names)
        return tuple(ignore_index)

    def classes_per_dataset(self) -> Tuple[int, ...]:
        """Classes of each dataset."""
        head = self.decode_head_of_classes()
        return tuple(getattr(head, 'dataset_num_classes', [head.num_classes] *
                             len(self.dataset_names)))

    def decode_head_of_classes(self) -> nn.Module:
        """The head whose predictions are the model's (the last stage of a cascade)."""
        return self.decode_head[-1] if isinstance(self.decode_head, nn.ModuleList) else \
            self.decode_head

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """A checkpoint of another architecture is an error, not a warning: mmengine loads
        ``load_from`` non-strictly and would train on from partly random weights. A checkpoint
        that states its datasets has its branches loaded by dataset name (``branch_map`` for
        other datasets); one that does not, by position. A dataset's classifier of other classes
        is an error too; a single-dataset MMSeg checkpoint's classifier loads into the datasets
        it fits, the others start fresh (fine-tuning to other classes, as in MMSeg)."""
        own = self.state_dict()
        shared = [k[len(prefix):] for k in state_dict if k.startswith(prefix)
                  and k[len(prefix):] in own]
        if not shared:
            raise ValueError(
                'the checkpoint holds none of the CDCL model\'s weights (its first keys: '
                f'{list(state_dict)[:3]}; the model\'s: {list(own)[:3]}): another architecture?')
        patterns = branch_patterns(self, prefix)
        stated = local_metadata.get('dataset_names')
        notes, sources = [], list(range(len(self.dataset_names)))
        if stated is not None:
            sources, notes = branch_sources(self.dataset_names, stated, self.branch_map)
            map_branches(state_dict, patterns, sources)
        self._check_classifiers(state_dict, own, patterns, prefix, stated, sources, notes)
        classifiers = tuple(f'{name}.' for name, m in self.named_modules()
                            if isinstance(m, DatasetBranches)) or ('\0', )
        wrong = [f'{k}: checkpoint {tuple(state_dict[prefix + k].shape)}, model '
                 f'{tuple(own[k].shape)}' for k in shared if prefix + k in state_dict
                 and state_dict[prefix + k].shape != own[k].shape and not k.startswith(classifiers)
                 and '.conv_seg.' not in k]
        if wrong:
            raise ValueError(f'the checkpoint does not fit the model: {len(wrong)} tensors have '
                             'other shapes, e.g. ' + '; '.join(wrong[:3]))
        if stated is not None:  # the class names of the datasets that load their own branches
            datasets = local_metadata.get('datasets') or {}
            self.set_dataset_classes({name: (datasets.get(name) or {}).get('classes')
                                      for name in self.dataset_names if name in stated})
        if notes:
            print_log('CDCL checkpoint: ' + '; '.join(notes), logger='current')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def _check_classifiers(self, state_dict, own, patterns, prefix, stated, sources,
                           notes: List[str]) -> None:
        """Refuse a dataset's classifier of other classes; drop it where the dataset starts
        from another's branches (``branch_map``), and say which start fresh."""
        refused, started = [], set()
        for d, key, theirs, ours in classifier_misfits(state_dict, own, patterns, prefix):
            name = self.dataset_names[d]
            source = (f'branch {sources[d]}' if stated is None else
                      f"branch '{stated[sources[d]]}'")
            classifier = key.rsplit('.', 2)[0]  # '<classifier>.<d>.<param>'
            first = (classifier, d) not in started  # once per classifier: its weight's shapes
            started.add((classifier, d))
            if stated is not None and stated[sources[d]] != name:
                del state_dict[prefix + key]
                if first:
                    notes.append(f"{classifier} of dataset '{name}' starts fresh ({source} of "
                                 f'the checkpoint has {theirs}, the model {ours})')
            elif first:
                refused.append(f"dataset '{name}' ({source} of the checkpoint) {key}: "
                               f'checkpoint {theirs}, model {ours}')
        if refused:
            raise ValueError(
                "the checkpoint's classifiers do not fit the model's datasets "
                f'{list(self.dataset_names)}: a checkpoint of other datasets or classes? '
                + '; '.join(refused[:4]))
        fresh = fresh_classifiers(state_dict, patterns, prefix, self.dataset_names)
        if fresh:
            notes.append('the classifier fits no branch of ' + ', '.join(fresh)
                         + ': they start fresh')

    def dataset_index(self, dataset: Union[str, int], key: str = 'dataset') -> int:
        """Index of a dataset given by name or index."""
        if isinstance(dataset, int) and 0 <= dataset < len(self.dataset_names):
            return dataset
        if dataset in self.dataset_names:
            return self.dataset_names.index(dataset)
        raise ValueError(f'{key}={dataset!r} is not one of the datasets '
                         f'{list(self.dataset_names)}')

    def _dataset_values(self, values, key: str, default: float) -> List[float]:
        if values is None:
            return [default] * len(self.dataset_names)
        if isinstance(values, dict):
            unknown = set(values) - set(self.dataset_names)
            if unknown:
                raise ValueError(f'{key} names unknown datasets {sorted(unknown)}; the datasets '
                                 f'are {list(self.dataset_names)}')
            return [float(values.get(name, default)) for name in self.dataset_names]
        if len(values) != len(self.dataset_names):
            raise ValueError(f'{key} has {len(values)} entries but there are '
                             f'{len(self.dataset_names)} datasets {list(self.dataset_names)}')
        return [float(v) for v in values]

    def _check_branches(self) -> None:
        wrong = [f'{name} ({type(m).__name__}) has {m.num_datasets}'
                 for name, m in self.named_modules()
                 if (isinstance(m, DatasetAwareModule) or is_dataset_aware(m))
                 and m.num_datasets != len(self.dataset_names)]
        if wrong:
            raise ValueError(
                f'CDCLEncoderDecoder has {len(self.dataset_names)} datasets '
                f'{list(self.dataset_names)} but not as many dataset branches in: '
                + '; '.join(wrong[:5])
                + (f'; ... ({len(wrong)} modules)' if len(wrong) > 5 else ''))

    def dataset_indices(self, data_samples: Optional[list], batch_size: int) -> List[int]:
        """The model's dataset index of each sample, from its metainfo ``dataset_name``
        (as ``MultiDataset`` sets it, whatever its dataset order) or else ``dataset_idx``."""
        if data_samples is None:
            data_samples = [None] * batch_size
        indices = []
        for i, sample in enumerate(data_samples):
            meta = {} if sample is None else sample.metainfo
            if meta.get('dataset_name') is not None:
                indices.append(self.dataset_index(meta['dataset_name'],
                                                  f"sample {i}'s dataset_name"))
            elif meta.get('dataset_idx') is not None:
                indices.append(self.dataset_index(int(meta['dataset_idx']),
                                                  f"sample {i}'s dataset_idx"))
            elif self.default_dataset is not None:  # None: to choose (auto, ensemble)
                indices.append(self.default_dataset if isinstance(self.default_dataset, int)
                               else None)
            else:
                where = f" ({meta['img_path']})" if 'img_path' in meta else ''
                raise ValueError(
                    f"sample {i}{where} has no 'dataset_idx' in its metainfo, so "
                    'CDCLEncoderDecoder cannot tell which dataset branch it belongs to; load '
                    'data through MultiDataset, or set model.default_dataset')
        return indices

    def aware_modules(self) -> List[DatasetAwareModule]:
        """The model's dataset-aware modules, found once (its modules do not change after it
        is built)."""
        if self._aware_modules is None:
            self._aware_modules = [m for m in self.modules() if isinstance(m, DatasetAwareModule)]
        return self._aware_modules

    def route(self, dataset_idx) -> Iterator[DatasetRouting]:
        """``dataset_context`` of the model."""
        return dataset_context(self, dataset_idx, self.aware_modules())

    @contextmanager
    def dataset(self, d: int) -> Iterator[None]:
        """Forwards inside run dataset ``d``'s branches, heads with its classes."""
        with ExitStack() as stack:
            stack.enter_context(self.route(d))
            for head in self.heads():
                stack.enter_context(head_dataset(head, d, self.dataset_ignore_index[d]))
            saved = self.num_classes, self.out_channels, self._active
            # Slide inference allocates its output with the routed dataset's classes.
            self.num_classes = self.out_channels = self.decode_head_of_classes().out_channels
            self._active = d
            try:
                yield
            finally:
                self.num_classes, self.out_channels, self._active = saved

    def _groups(self, inputs: Tensor, data_samples: Optional[list], indices=None):
        """The batch's routing, then each dataset's index, positions in the batch and samples."""
        if indices is None:
            indices = self.dataset_indices(data_samples, len(inputs))
        if None in indices:
            raise ValueError(f'default_dataset={self.default_dataset!r} chooses a branch for '
                             'inference; training and tensor outputs need each sample\'s '
                             'dataset (MultiDataset sets it)')
        routing = DatasetRouting.build(indices)
        groups = []
        for d, rows in routing.groups:
            positions = (list(range(len(inputs)))[rows] if isinstance(rows, slice) else
                         rows.tolist())
            samples = None if data_samples is None else [data_samples[i] for i in positions]
            groups.append((d, positions, samples))
        return routing, groups

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        """Each dataset's losses, named ``'<dataset>.<head>.<loss>'`` and weighted by w_i."""
        routing, groups = self._groups(inputs, data_samples)
        for module in self.aware_modules():
            module.forget_routing()  # a new step for gradient checkpointing's recomputation
        per_dataset = {d: {} for d, _, _ in groups}
        try:
            with self.route(routing):
                feats = self.extract_feat(inputs)
            parts = _LazySplit(feats, routing)
            for d, losses in self._decode_losses(feats, parts, routing, groups).items():
                per_dataset[d].update(losses)
            for prefix, head in self._auxiliary_heads():
                for d, losses in self._head_losses(head, feats, parts, routing, groups).items():
                    per_dataset[d].update(add_prefix(losses, prefix))
        except DatasetBatchTooSmall as e:
            raise ValueError(f"dataset '{self.dataset_names[e.dataset]}': {e}") from e
        weighted = {}
        for d, losses in per_dataset.items():
            weight = self.loss_weights[d]
            for key, value in losses.items():
                if 'loss' in key and weight != 1:
                    value = ([v * weight for v in value] if isinstance(value, list) else
                             value * weight)
                weighted[f'{self.dataset_names[d]}.{key}'] = value
        return weighted

    def _decode_losses(self, feats, parts, routing: DatasetRouting, groups) -> Dict[int, dict]:
        """Each dataset's losses of the decode head, named as MMSeg names them."""
        return {d: add_prefix(losses, 'decode') for d, losses in
                self._head_losses(self.decode_head, feats, parts, routing, groups).items()}

    def _auxiliary_heads(self) -> List[Tuple[str, nn.Module]]:
        """The auxiliary heads with MMSeg's prefixes of their losses."""
        heads = getattr(self, 'auxiliary_head', None)
        if heads is None:
            return []
        if isinstance(heads, nn.ModuleList):
            return [(f'aux_{i}', head) for i, head in enumerate(heads)]
        return [('aux', heads)]

    def _head_losses(self, head: nn.Module, feats, parts, routing: DatasetRouting,
                     groups) -> Dict[int, dict]:
        """Each dataset's losses of one head. A head of MMSeg's usual form
        (``cls_seg(_forward_feature(inputs))``, BaseDecodeHead's loss) runs its convs once on
        the batch of all datasets (DSBN normalising each dataset's samples with its own
        statistics) and its classifier and loss per dataset; any other head runs once per
        dataset on that dataset's samples, its losses computed as the head computes them."""
        if runs_on_mixed_batches(head):
            with self.route(routing):
                shared = head._forward_feature(feats)
            losses = {}
            for (d, _, samples), part in zip(groups, routing.split(shared)):
                with self.dataset(d):
                    losses[d] = head.loss_by_feat(head.cls_seg(part), samples)
            return losses
        losses = {}
        for g, (d, _, samples) in enumerate(groups):
            with self.dataset(d):
                losses[d] = head.loss(parts[g], samples, self.train_cfg)
        return losses

    def parse_losses(self, losses: dict) -> Tuple[Tensor, dict]:
        """mmengine's sum of the losses, plus each dataset's total in the log; raises on a
        non-finite loss before any weight is updated.

        Raises:
            FloatingPointError: names the dataset, the loss and the iteration.
        """
        # mmengine sums every term whose name contains 'loss': dataset names must not count.
        index = {name: d for d, name in enumerate(self.dataset_names)}
        indexed = {}
        for key, value in losses.items():
            name, _, rest = key.partition('.')
            indexed[f'{index[name]}.{rest}' if name in index and rest else key] = value
        loss, indexed_vars = super().parse_losses(indexed)
        log_vars, totals = {}, {}
        for key, value in indexed_vars.items():
            d, _, rest = key.partition('.')
            if d.isdigit() and rest:
                name = self.dataset_names[int(d)]
                log_vars[f'{name}.{rest}'] = value
                if 'loss' in rest:
                    totals[f'{name}.loss'] = totals.get(f'{name}.loss', 0) + value
            else:
                log_vars[key] = value
        log_vars.update(totals)
        if not torch.isfinite(loss):
            bad = [f'{k}={float(v)}' for k, v in log_vars.items()
                   if '.' in k and not torch.isfinite(v)]
            iteration = MessageHub.get_current_instance().get_info('iter', -1) + 1
            datasets = sorted({k.split('.')[0] for k in bad})
            raise FloatingPointError(
                f'non-finite loss at iteration {iteration} for dataset(s) {datasets}: '
                + ', '.join(bad) + '; no weights were updated with it')
        return loss, log_vars

    def extract_feat(self, inputs: Tensor):
        """MMSeg's features; while the branches share them (see ``_sharing_features``), those
        of the tensor last seen if ``inputs`` views the same data (slide inference's single
        window is a view of the whole image)."""
        shared = self._shared_feats
        if shared and _same_data(shared[0], inputs):
            return shared[1]
        feats = super().extract_feat(inputs)
        if shared is not None:
            self._shared_feats = [inputs, feats]
        return feats

    @contextmanager
    def _sharing_features(self) -> Iterator[None]:
        """Reuse the backbone's (and neck's) features across branches when no dataset-aware
        module is in them (SegFormer: LayerNorms only): choosing an image's branch, then
        predicting with it, runs them once."""
        parts = [self.backbone] + ([self.neck] if self.with_neck else [])
        if any(isinstance(m, DatasetAwareModule) for part in parts for m in part.modules()):
            yield
            return
        self._shared_feats = []
        try:
            yield
        finally:
            self._shared_feats = None

    @property
    def cfg(self):
        """The config ``mmseg.apis.init_model`` keeps with the model. ``inference_model``
        preprocesses images with its ``test_pipeline``: for a config whose test (else val)
        MultiDataset gives each dataset its pipeline, it is set here to all of them
        (``DatasetTestPipelines``), so that each image is predicted with the test pipeline of
        the dataset whose branch predicts it."""
        return self.__dict__.get('_cfg')

    @cfg.setter
    def cfg(self, cfg) -> None:
        pipeline = None if cfg is None else inference_pipeline(cfg, list(self.dataset_names))
        if pipeline is not None:
            cfg.test_pipeline = pipeline
        self.__dict__['_cfg'] = cfg

    def predict(self, inputs: Tensor, data_samples: Optional[list] = None) -> list:
        """Predict each sample with its dataset's branch and classifier; a sample of unknown
        source (``default_dataset='auto'`` or ``'ensemble'``) with the branch its statistics
        choose, or all branches combined."""
        if (self.test_cfg or {}).get('unknown_source', False):
            with self._sharing_features():
                return predict_routes(self, inputs, data_samples)
        if data_samples and 'pipeline_dataset' in data_samples[0].metainfo:
            return self._predict_dataset_inputs(inputs, data_samples)
        indices = self.dataset_indices(data_samples, len(inputs))
        unknown = [i for i, d in enumerate(indices) if d is None]
        if not unknown:
            return self._predict_routed(inputs, data_samples, indices)
        with self._sharing_features():
            results = self._predict_unknown(inputs, data_samples, indices, unknown)
        return results

    def _predict_unknown(self, inputs, data_samples, indices, unknown) -> list:
        """``predict`` of a batch with samples of unknown source (a batch of them alone is
        passed on as the same tensor, whose features the branches may share)."""
        results = [None] * len(inputs)
        subset = inputs if len(unknown) == len(inputs) else inputs[unknown]
        choice, scores = self.branch_selector(self, subset)
        if self.default_dataset == ENSEMBLE:
            samples = None if data_samples is None else [data_samples[i] for i in unknown]
            for i, result in zip(unknown, ensemble(self, subset, samples, scores)):
                results[i] = result
        else:
            for i, d in zip(unknown, choice.tolist()):
                indices[i] = d
        known = [i for i, d in enumerate(indices) if d is not None and results[i] is None]
        if known:
            samples = None if data_samples is None else [data_samples[i] for i in known]
            subset = inputs if len(known) == len(inputs) else inputs[known]
            routed = self._predict_routed(subset, samples, [indices[i] for i in known])
            for i, result in zip(known, routed):
                results[i] = result
        for k, i in enumerate(unknown):
            d = int(scores[k].argmax())
            results[i].set_metainfo(dict(dataset_name=self.dataset_names[d], dataset_scores={
                name: float(v) for name, v in zip(self.dataset_names, scores[k])}))
        return results

    def _predict_dataset_inputs(self, inputs: Tensor, data_samples: list) -> list:
        """``predict`` of images prepared by every dataset's test pipeline
        (``DatasetTestPipelines``): each with the inputs of the dataset whose branch predicts
        it. Auto chooses on the inputs given (the first dataset's pipeline's); ensemble
        combines the branches on them."""
        versions = []
        for sample in data_samples:
            own = sample.metainfo['pipeline_dataset']
            versions.append(dict(sample.metainfo['dataset_inputs'], **{own: None}))
            del sample.dataset_inputs  # the other datasets' images: not part of the result
        indices = self.dataset_indices(data_samples, len(inputs))
        if None in indices:
            choice, scores = self.branch_selector(self, inputs)
        results = []
        for i, d in enumerate(indices):
            if d is None and self.default_dataset == AUTO:
                d = int(choice[i])
            if d is None:  # ensemble
                result = ensemble(self, inputs[i:i + 1], data_samples[i:i + 1], scores[i:i + 1])
            else:
                version = versions[i][self.dataset_names[d]]
                part, sample = inputs[i:i + 1], data_samples[i]
                if version is not None:  # another dataset's pipeline made inputs[i]
                    data = self.data_preprocessor(dict(inputs=[version['inputs']],
                                                       data_samples=[version['data_samples']]))
                    part, sample = data['inputs'], data['data_samples'][0]
                    sample.set_metainfo(dict(pipeline_dataset=self.dataset_names[d]))
                result = self._predict_routed(part, [sample], [d])
            if indices[i] is None:
                result[0].set_metainfo(dict(dataset_name=self.dataset_names[int(
                    scores[i].argmax())], dataset_scores={
                        name: float(v) for name, v in zip(self.dataset_names, scores[i])}))
            results += result
        return results

    def _predict_routed(self, inputs: Tensor, data_samples: Optional[list],
                        indices: List[int]) -> list:
        routing, groups = self._groups(inputs, data_samples, indices)
        results = [None] * len(inputs)
        for (d, positions, samples), part in zip(groups, routing.split(inputs)):
            with self.dataset(d):
                predictions = super().predict(part, samples)
            for i, prediction in zip(positions, predictions):
                results[i] = prediction
        return results

    def postprocess_result(self, seg_logits: Tensor, data_samples: Optional[list] = None):
        """MMSeg's results, in the label space's classes when there is one (log-probabilities
        as logits)."""
        if self.label_space is not None and self._active is not None:
            seg_logits = self.label_space.probabilities(seg_logits, self._active)
            seg_logits = seg_logits.clamp_min(1e-12).log()
        return super().postprocess_result(seg_logits, data_samples)

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None):
        """Logits of the plain network on each sample's branch (a list for mixed batches)."""
        routing, groups = self._groups(inputs, data_samples)
        outputs = []
        for (d, _, samples), part in zip(groups, routing.split(inputs)):
            with self.dataset(d):
                outputs.append(super()._forward(part, samples))
        return outputs[0] if len(outputs) == 1 else outputs


def _state_datasets(model: CDCLEncoderDecoder, state_dict, prefix: str,
                    local_metadata: dict) -> None:
    """State dict hook: the model's datasets, stated in its metadata."""
    local_metadata.update(model.stated_datasets())


def _warn(message: str) -> None:
    warnings.warn(message)
    print_log(message, logger='current', level=30)


def _head_classes(decode) -> Optional[Union[int, Sequence[int]]]:
    """``num_classes`` of a decode head config (the last stage's of a cascade)."""
    decode = decode[-1] if isinstance(decode, list) else decode
    return None if decode is None else decode.get('num_classes')


def _config_classes(num_classes, cfgs: dict) -> Optional[Sequence[int]]:
    """Classes of each dataset as the config states them (converted or DAB heads); None where
    only the built model tells."""
    classes = num_classes if num_classes is not None else _head_classes(cfgs.get('decode_head'))
    return classes if isinstance(classes, (list, tuple)) else None


def _same_data(a: Tensor, b: Tensor) -> bool:
    """Whether ``b`` views exactly ``a``'s elements, unchanged (``a`` is held, so its memory
    is not another tensor's)."""
    return (a is b or a.data_ptr() == b.data_ptr() and a.shape == b.shape
            and a.stride() == b.stride() and a.dtype == b.dtype and a.device == b.device
            and a._version == b._version)


def _split(feats, routing: DatasetRouting) -> list:
    """Each dataset group's part of the backbone's (or neck's) outputs."""
    if isinstance(feats, Tensor):
        return list(routing.split(feats))
    if isinstance(feats, (list, tuple)):
        parts = [_split(f, routing) for f in feats]
        return [type(feats)(p[g] for p in parts) for g in range(len(routing.groups))]
    return [feats] * len(routing.groups)


class _LazySplit:
    """Each dataset group's part of the features, split (copied) when a head needs it."""

    def __init__(self, feats, routing: DatasetRouting):
        self.feats, self.routing, self._parts = feats, routing, None

    def __getitem__(self, group: int):
        if self._parts is None:
            self._parts = _split(self.feats, self.routing)
        return self._parts[group]


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
    return (code.co_code == reference.co_code and code.co_names == reference.co_names
            and kind.loss is BaseDecodeHead.loss and kind.cls_seg is BaseDecodeHead.cls_seg
            and [n for n, m in head.named_modules() if isinstance(m, DatasetBranches)] in (
                [], ['conv_seg']))
