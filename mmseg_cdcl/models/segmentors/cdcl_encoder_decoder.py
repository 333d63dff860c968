"""The CDCL segmentor: one network, one branch per dataset, L = Σ_i w_i·L_i."""

import copy
import functools
from contextlib import ExitStack, contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import add_prefix
from torch import Tensor, nn

from ...datasets.transforms import inference_pipeline
from ...structures.prediction_space import (
    branch_space,
    check_output_space,
    model_dataset_meta,
    predicts_in_label_space,
    set_prediction_space,
)
from ..decode_heads import head_dataset, is_dataset_aware
from ..layers import DatasetAwareModule, DatasetBatchTooSmall, DatasetRouting, dataset_context
from ..losses import dataset_loss_weights, parse_dataset_losses, weighted_dataset_losses
from ..utils import BranchSelector, LabelSpace
from ..utils.checkpoint_datasets import (
    checked_branch_map,
    checked_dataset_classes,
    prepare_state_dict,
    state_datasets,
    stated_datasets,
)
from ..utils.convert_dataset_aware import (
    check_branches,
    check_convertible,
    config_classes,
    convert_dataset_aware,
    convert_running_statistics,
    runs_on_mixed_batches,
)
from ..utils.convert_universal_head import convert_universal_head
from ..utils.unknown_source import (
    AUTO,
    ENSEMBLE,
    SharedFeatures,
    check_ensemble,
    predict_dataset_inputs,
    predict_routes,
    predict_unknown,
)


@MODELS.register_module()
class CDCLEncoderDecoder(EncoderDecoder):
    """EncoderDecoder trained across datasets (Cross-Dataset Collaborative Learning).

    Any MMSeg model config becomes CDCL by stating its datasets and their classes (the
    conversion form, :func:`convert_dataset_aware`)::

        _base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py']
        model = dict(type='CDCLEncoderDecoder', dataset_names=['cityscapes', 'camvid'],
                     num_classes=[19, 11])

    Every BatchNorm becomes a DSBN (Dataset-Aware Blocks) and every head that predicts the
    model's classes gets one classifier per dataset; a config with ``num_stages`` (OCRNet)
    builds :class:`CDCLCascadeEncoderDecoder`. The paper's configs name the Dataset-Aware
    components instead (``DABResNetV1c``, ``DABPSPHead``, ...), without ``num_classes`` here.

    Each sample's dataset comes from its metainfo: ``dataset_name`` (set by ``MultiDataset``)
    or ``dataset_idx``. Training runs backbone and neck once on the mixed batch, DSBN
    normalising each dataset's samples with its own statistics, then every head per dataset
    with its classifier, classes and ignore index. Each dataset's losses
    (``'<dataset>.decode.loss_ce'``, ...) are scaled by its weight, so that mmengine's
    ``parse_losses`` sums exactly L = Σ_i w_i·L_i. Prediction routes each sample to its
    dataset's branch and costs the FLOPs of the plain network.

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
        universal_head (bool): One classifier of ``label_space``'s classes (the universal
            classes) for all datasets, instead of one per dataset; DSBN stays per dataset. Each
            dataset's labels train it through its mapping, where a class may be a union of
            universal classes (a pixel of class c costs −log Σ_{u∈U_d(c)} p(u),
            :func:`~mmseg_cdcl.models.utils.convert_universal_head`). Predictions are in the
            universal classes, or with ``test_cfg.output_space='dataset'`` in the image's
            dataset's (P_d(c) = Σ_{u∈U_d(c)} p(u)). Defaults to False.
        **kwargs: Arguments of :class:`mmseg.models.segmentors.EncoderDecoder`. ``test_cfg``
            may set ``unknown_source=True`` (predict every route of every image, for
            ``UnknownSourceMetric``), ``ensemble_weights='scores'`` or ``'uniform'``, and, with
            a ``label_space``, ``output_space='dataset'``: an image of a known dataset (a
            ``MultiDataset``'s, a named ``default_dataset``, auto's choice) is predicted and
            evaluated in its dataset's classes instead of the label space's (the default,
            ``'label_space'``). Every prediction states its space in its metainfo
            (``prediction_space``, :mod:`mmseg_cdcl.structures.prediction_space`).

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

    def __init__(
        self,
        dataset_names: Sequence[str],
        num_classes: Optional[Sequence[int]] = None,
        ignore_index: Optional[Union[int, Sequence[int]]] = None,
        loss_weights: Optional[Union[Sequence[float], Dict[str, float]]] = None,
        default_dataset: Optional[Union[str, int]] = None,
        label_space: Optional[dict] = None,
        branch_selection: Optional[dict] = None,
        branch_map: Optional[Dict[str, str]] = None,
        universal_head: bool = False,
        **kwargs,
    ):
        # Every refusal that needs only the config comes before the model is built.
        self.dataset_names = self._checked_names(dataset_names)
        if universal_head and label_space is None:
            raise ValueError(
                'universal_head=True predicts the classes of model.label_space, which is not set: '
                "give label_space=dict(classes=[the universal classes], mapping={each dataset's "
                'classes as universal classes or lists of them})'
            )
        if num_classes is not None:
            check_convertible(kwargs, self.dataset_names, num_classes, ignore_index)
        default_dataset = (
            default_dataset
            if default_dataset in (None, AUTO, ENSEMBLE)
            else self.dataset_index(default_dataset, 'default_dataset')
        )
        check_ensemble(
            self.dataset_names,
            default_dataset,
            label_space,
            kwargs.get('test_cfg'),
            config_classes(num_classes, kwargs),
        )
        check_output_space(kwargs.get('test_cfg'), label_space)
        branch_selector = BranchSelector(**(branch_selection or {}))
        loss_weights = dataset_loss_weights(loss_weights, self.dataset_names)
        branch_map = checked_branch_map(branch_map, self.dataset_names)
        super().__init__(**kwargs)
        if num_classes is not None:
            convert_dataset_aware(self, kwargs, num_classes, ignore_index)
        self.dataset_ignore_index = self._ignore_indices(ignore_index)
        self.loss_weights = loss_weights
        self.default_dataset = default_dataset
        check_branches(self, len(self.dataset_names))
        check_ensemble(
            self.dataset_names,
            default_dataset,
            label_space,
            self.test_cfg,
            self.classes_per_dataset(),
        )
        self.label_space = (
            None
            if label_space is None
            else LabelSpace(
                dataset_names=self.dataset_names,
                num_classes=self.classes_per_dataset(),
                defer_class_names=True,
                universal=universal_head,
                **label_space,
            )
        )
        self.universal_head = bool(universal_head)
        if universal_head:
            convert_universal_head(self, kwargs, self.label_space)
        # Class names of the datasets, where known: stated in checkpoints, checked at loading.
        self.dataset_classes: Dict[str, Tuple[str, ...]] = dict(
            getattr(self.label_space, 'dataset_classes', {})
        )
        # Their colours, where known (drawings of a dataset's predictions): stated with them.
        self.dataset_palettes: Dict[str, List[List[int]]] = {}
        self.branch_map = branch_map
        self.register_state_dict_post_hook(state_datasets)
        self.branch_selector = branch_selector
        self._active: Optional[int] = None  # the dataset whose branch runs
        self._aware_modules: Optional[List[DatasetAwareModule]] = None  # found at first use
        self._shared_features = SharedFeatures()
        convert_running_statistics(self, len(self.dataset_names))
        self._aware_modules = None  # found by the probe's forward, before it converted some

    @staticmethod
    def _checked_names(names: Sequence[str]) -> Tuple[str, ...]:
        if isinstance(names, str) or not names:
            raise ValueError(f'dataset_names must list the datasets, got {names!r}')
        for name in names:
            if not isinstance(name, str) or not name or '.' in name or '/' in name:
                raise ValueError(
                    f'dataset name {name!r}: expected a non-empty string without '
                    "'.' or '/' (they separate dataset, head and loss in log keys)"
                )
            if name in (AUTO, ENSEMBLE):
                raise ValueError(
                    f'dataset name {name!r} is reserved: default_dataset={name!r} '
                    'chooses among the datasets'
                )
        if len(set(names)) != len(names):
            raise ValueError(f'dataset_names={list(names)} names a dataset twice')
        return tuple(names)

    @property
    def dataset_meta(self) -> Optional[dict]:
        """MMSeg's ``dataset_meta`` (``init_model`` sets the checkpoint's); its
        ``datasets[name]['classes']`` (a ``MultiDataset``'s metainfo) are the datasets'
        class names. Its ``classes`` and ``palette``, which MMSeg's visualizer draws with, are
        those of the space the model predicts images in when not told their dataset
        (:func:`~mmseg_cdcl.structures.prediction_space.model_dataset_meta`)."""
        return self.__dict__.get('_dataset_meta')

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        datasets = (meta or {}).get('datasets') or {}
        self.set_dataset_classes(
            {name: m.get('classes') for name, m in datasets.items() if isinstance(m, dict)},
            {name: m.get('palette') for name, m in datasets.items() if isinstance(m, dict)},
        )
        self.__dict__['_dataset_meta'] = model_dataset_meta(self, meta)

    def set_dataset_classes(
        self,
        classes: Dict[str, Optional[Sequence[str]]],
        palettes: Optional[Dict[str, Optional[Sequence[Sequence[int]]]]] = None,
    ) -> None:
        """Learn the class names of datasets (the label space's mappings by class name wait
        for them), and their colours (``palettes``) where given with as many colours.

        Raises:
            ValueError: other class names than the model knows, or another number of them.
        """
        known = checked_dataset_classes(self, classes)
        self.dataset_classes.update(known)
        if self.label_space is not None:
            self.label_space.set_dataset_classes(known)
        for name, palette in (palettes or {}).items():
            own = self.dataset_classes.get(name)
            if palette is not None and own is not None and len(palette) == len(own):
                self.dataset_palettes[name] = [[int(v) for v in c] for c in palette]

    def stated_datasets(self) -> dict:
        """What the model's state dicts state about its datasets (see
        :mod:`mmseg_cdcl.models.utils.checkpoint_datasets`)."""
        return stated_datasets(self)

    def heads(self) -> List[nn.Module]:
        """The decode heads (every stage of a cascade) and auxiliary heads."""
        heads = []
        for head in (self.decode_head, getattr(self, 'auxiliary_head', None)):
            heads += list(head) if isinstance(head, nn.ModuleList) else [head] * (head is not None)
        return heads

    def _ignore_indices(self, ignore_index) -> Tuple[int, ...]:
        """Each dataset's ignore index, for heads shared by the datasets."""
        aware = [h for h in self.heads() if is_dataset_aware(h)]
        if aware:
            return tuple(aware[0].dataset_ignore_index)
        if ignore_index is None or isinstance(ignore_index, int):
            ignore_index = [
                self.decode_head_of_classes().ignore_index if ignore_index is None else ignore_index
            ] * len(self.dataset_names)
        return tuple(ignore_index)

    def classes_per_dataset(self) -> Tuple[int, ...]:
        """Classes of each dataset."""
        head = self.decode_head_of_classes()
        return tuple(
            getattr(head, 'dataset_num_classes', [head.num_classes] * len(self.dataset_names))
        )

    def decode_head_of_classes(self) -> nn.Module:
        """The head whose predictions are the model's (the last stage of a cascade)."""
        return (
            self.decode_head[-1]
            if isinstance(self.decode_head, nn.ModuleList)
            else self.decode_head
        )

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        """The checkpoint checked against the model and its branches mapped to the model's
        datasets (by name where it states them) first: see :func:`prepare_state_dict`."""
        prepare_state_dict(self, state_dict, prefix, local_metadata)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def dataset_index(self, dataset: Union[str, int], key: str = 'dataset') -> int:
        """Index of a dataset given by name or index."""
        if isinstance(dataset, int) and 0 <= dataset < len(self.dataset_names):
            return dataset
        if dataset in self.dataset_names:
            return self.dataset_names.index(dataset)
        raise ValueError(f'{key}={dataset!r} is not one of the datasets {list(self.dataset_names)}')

    def dataset_indices(self, data_samples: Optional[list], batch_size: int) -> List[int]:
        """The model's dataset index of each sample, from its metainfo ``dataset_name``
        (as ``MultiDataset`` sets it, whatever its dataset order) or else ``dataset_idx``."""
        if data_samples is None:
            data_samples = [None] * batch_size
        indices = []
        for i, sample in enumerate(data_samples):
            meta = {} if sample is None else sample.metainfo
            if meta.get('dataset_name') is not None:
                indices.append(
                    self.dataset_index(meta['dataset_name'], f"sample {i}'s dataset_name")
                )
            elif meta.get('dataset_idx') is not None:
                indices.append(
                    self.dataset_index(int(meta['dataset_idx']), f"sample {i}'s dataset_idx")
                )
            elif self.default_dataset is not None:  # None: to choose (auto, ensemble)
                indices.append(
                    self.default_dataset if isinstance(self.default_dataset, int) else None
                )
            else:
                where = f' ({meta["img_path"]})' if 'img_path' in meta else ''
                raise ValueError(
                    f"sample {i}{where} has no 'dataset_idx' in its metainfo, so "
                    'CDCLEncoderDecoder cannot tell which dataset branch it belongs to; load '
                    'data through MultiDataset, or set model.default_dataset'
                )
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
            raise ValueError(
                f'default_dataset={self.default_dataset!r} chooses a branch for '
                "inference; training and tensor outputs need each sample's "
                'dataset (MultiDataset sets it)'
            )
        routing = DatasetRouting.build(indices)
        groups = []
        for d, positions in zip(routing.datasets, routing.positions(len(inputs))):
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

            @functools.lru_cache(maxsize=None)
            def parts():  # each group's part of the features, split (copied) if a head needs it
                return routing.split(feats)

            for d, losses in self._decode_losses(feats, parts, routing, groups).items():
                per_dataset[d].update(losses)
            for prefix, head in self._auxiliary_heads():
                for d, losses in self._head_losses(head, feats, parts, routing, groups).items():
                    per_dataset[d].update(add_prefix(losses, prefix))
        except DatasetBatchTooSmall as e:
            raise ValueError(f"dataset '{self.dataset_names[e.dataset]}': {e}") from e
        return weighted_dataset_losses(per_dataset, self.dataset_names, self.loss_weights)

    def _decode_losses(self, feats, parts, routing: DatasetRouting, groups) -> Dict[int, dict]:
        """Each dataset's losses of the decode head, named as MMSeg names them."""
        return {
            d: add_prefix(losses, 'decode')
            for d, losses in self._head_losses(
                self.decode_head, feats, parts, routing, groups
            ).items()
        }

    def _auxiliary_heads(self) -> List[Tuple[str, nn.Module]]:
        """The auxiliary heads with MMSeg's prefixes of their losses."""
        heads = getattr(self, 'auxiliary_head', None)
        if isinstance(heads, nn.ModuleList):
            return [(f'aux_{i}', head) for i, head in enumerate(heads)]
        return [] if heads is None else [('aux', heads)]

    def _head_losses(
        self, head: nn.Module, feats, parts, routing: DatasetRouting, groups
    ) -> Dict[int, dict]:
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
                losses[d] = head.loss(parts()[g], samples, self.train_cfg)
        return losses

    def parse_losses(self, losses: dict) -> Tuple[Tensor, dict]:
        """mmengine's sum of the losses, plus each dataset's total in the log; raises on a
        non-finite loss before any weight is updated (:func:`parse_dataset_losses`)."""
        return parse_dataset_losses(losses, self.dataset_names, super().parse_losses)

    def extract_feat(self, inputs: Tensor):
        """MMSeg's features; while the branches share them (:class:`SharedFeatures`), those
        of the tensor last seen if ``inputs`` views the same data."""
        return self._shared_features.extract(inputs, super().extract_feat)

    @property
    def cfg(self):
        """The config ``mmseg.apis.init_model`` (and ``MMSegInferencer``) keeps with the model.
        They preprocess images with its ``test_pipeline`` (``MMSegInferencer``: its test
        dataset's ``pipeline``): for a config whose test (else val) MultiDataset gives each
        dataset its pipeline, both are set here to all of them (``DatasetTestPipelines``), so
        that each image is predicted with the test pipeline of the dataset whose branch
        predicts it. (The config given is changed, as ``init_model`` changes it.)"""
        return self.__dict__.get('_cfg')

    @cfg.setter
    def cfg(self, cfg) -> None:
        pipeline = None if cfg is None else inference_pipeline(cfg, list(self.dataset_names))
        if pipeline is not None:
            cfg.test_pipeline = pipeline
            dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
            if isinstance(dataset.get('datasets'), dict) and dataset.get('pipeline') is None:
                dataset['pipeline'] = copy.deepcopy(pipeline)  # a MultiDataset's
        self.__dict__['_cfg'] = cfg

    def predict(self, inputs: Tensor, data_samples: Optional[list] = None) -> list:
        """Predict each sample with its dataset's branch and classifier; a sample of unknown
        source (``default_dataset='auto'`` or ``'ensemble'``) with the branch its statistics
        choose, or all branches combined."""
        if (self.test_cfg or {}).get('unknown_source', False):
            with self._shared_features.sharing(self):
                return predict_routes(self, inputs, data_samples)
        if data_samples and 'pipeline_dataset' in data_samples[0].metainfo:
            return predict_dataset_inputs(self, inputs, data_samples)
        indices = self.dataset_indices(data_samples, len(inputs))
        unknown = [i for i, d in enumerate(indices) if d is None]
        if not unknown:
            return self.predict_routed(inputs, data_samples, indices)
        with self._shared_features.sharing(self):
            return predict_unknown(self, inputs, data_samples, indices, unknown)

    def predict_routed(
        self, inputs: Tensor, data_samples: Optional[list], indices: List[int]
    ) -> list:
        """``predict`` of each sample with the branch of its dataset ``indices[i]``."""
        routing, groups = self._groups(inputs, data_samples, indices)
        results = [None] * len(inputs)
        for (d, positions, samples), part in zip(groups, routing.split(inputs)):
            with self.dataset(d):
                predictions = super().predict(part, samples)
            for i, prediction in zip(positions, predictions):
                results[i] = prediction
        return results

    def postprocess_result(self, seg_logits: Tensor, data_samples: Optional[list] = None):
        """MMSeg's results, in the label space's classes when the model predicts there
        (log-probabilities as logits), each stating its space (``prediction_space``). A
        universal head's predicted in its dataset's classes (``output_space='dataset'``) are
        the sums of the universal probabilities over each class's universal classes."""
        if self._active is None:  # not a branch's prediction (e.g. slide inference's parts)
            return super().postprocess_result(seg_logits, data_samples)
        in_label_space = predicts_in_label_space(self)
        if in_label_space:
            seg_logits = self.label_space.probabilities(seg_logits, self._active)
            seg_logits = seg_logits.clamp_min(1e-12).log()
        elif self.universal_head:
            seg_logits = self.label_space.dataset_probabilities(seg_logits, self._active)
            seg_logits = seg_logits.clamp_min(1e-12).log()
        results = super().postprocess_result(seg_logits, data_samples)
        space = branch_space(self, self._active, in_label_space)
        for result in results:
            set_prediction_space(result, space)
        return results

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None):
        """Logits of the plain network on each sample's branch (a list for mixed batches)."""
        routing, groups = self._groups(inputs, data_samples)
        outputs = []
        for (d, _, samples), part in zip(groups, routing.split(inputs)):
            with self.dataset(d):
                outputs.append(super()._forward(part, samples))
        return outputs[0] if len(outputs) == 1 else outputs
