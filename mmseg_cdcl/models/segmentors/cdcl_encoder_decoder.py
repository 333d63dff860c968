"""The CDCL segmentor: one network, one branch per dataset, L = Σ_i w_i·L_i."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MessageHub
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor

from ..layers import DatasetAwareModule, DatasetRouting, dataset_context


@MODELS.register_module()
class CDCLEncoderDecoder(EncoderDecoder):
    """EncoderDecoder trained across datasets (Cross-Dataset Collaborative Learning).

    Each sample's dataset comes from its data sample's metainfo: ``dataset_name`` (set by
    ``MultiDataset``) or ``dataset_idx``. Training runs backbone and heads once on the mixed
    batch, DSBN normalising each dataset's samples with its own statistics, and returns each
    dataset's losses, computed with its own classifier and ignore index on its own samples, as
    ``'<dataset>.decode.loss_ce'``, ``'<dataset>.aux.loss_ce'``, ... scaled by the dataset's
    weight, so that mmengine's ``parse_losses`` sums exactly L = Σ_i w_i·L_i. Prediction routes
    each sample to its dataset's branch and costs the FLOPs of the plain network.

    Args:
        dataset_names (Sequence[str]): Name of each dataset, in dataset index order.
        loss_weights (Sequence[float] | dict, optional): w_i per dataset, as a list or by name.
            Defaults to 1 for every dataset.
        default_dataset (str | int, optional): Dataset of samples without ``dataset_idx``
            (e.g. images given to ``inference_model``). Defaults to None: such samples raise.
        **kwargs: Arguments of :class:`mmseg.models.segmentors.EncoderDecoder`.

    Example:
        >>> model = dict(
        ...     type='CDCLEncoderDecoder', dataset_names=['cityscapes', 'bdd100k'],
        ...     backbone=dict(type='DABResNetV1c', num_datasets=2, depth=18, ...),
        ...     decode_head=dict(type='DABPSPHead', num_classes=[19, 19], ...),
        ...     auxiliary_head=dict(type='DABFCNHead', num_classes=[19, 19], ...))
    """
    plain_type = 'EncoderDecoder'  # what export_single_dataset turns it into

    def __init__(self,
                 dataset_names: Sequence[str],
                 loss_weights: Optional[Union[Sequence[float], Dict[str, float]]] = None,
                 default_dataset: Optional[Union[str, int]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.dataset_names = tuple(dataset_names)
        self.loss_weights = self._dataset_values(loss_weights, 'loss_weights', default=1.0)
        self.default_dataset = (None if default_dataset is None else
                                self.dataset_index(default_dataset, 'default_dataset'))
        self._check_branches()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """A checkpoint of another architecture is an error, not a warning: mmengine loads
        ``load_from`` non-strictly and would train on from partly random weights. Classifiers
        may differ (fine-tuning to other classes, as in MMSeg)."""
        own = self.state_dict()
        shared = [k[len(prefix):] for k in state_dict if k.startswith(prefix)
                  and k[len(prefix):] in own]
        if not shared:
            raise ValueError(
                'the checkpoint holds none of the CDCL model\'s weights (its first keys: '
                f'{list(state_dict)[:3]}; the model\'s: {list(own)[:3]}): another architecture?')
        wrong = [f'{k}: checkpoint {tuple(state_dict[prefix + k].shape)}, model '
                 f'{tuple(own[k].shape)}' for k in shared
                 if state_dict[prefix + k].shape != own[k].shape and '.conv_seg.' not in k]
        if wrong:
            raise ValueError(f'the checkpoint does not fit the model: {len(wrong)} tensors have '
                             'other shapes, e.g. ' + '; '.join(wrong[:3]))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def dataset_index(self, dataset: Union[str, int], key: str = 'dataset') -> int:
        """Index of a dataset given by name or index."""
        if isinstance(dataset, int) and 0 <= dataset < len(self.dataset_names):
            return dataset
        if dataset in self.dataset_names:
            return self.dataset_names.index(dataset)
        raise ValueError(f'{key}={dataset!r} is not one of the datasets {list(self.dataset_names)}')

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
                 if isinstance(m, DatasetAwareModule) and m.num_datasets != len(self.dataset_names)]
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
            elif self.default_dataset is not None:
                indices.append(self.default_dataset)
            else:
                where = f" ({meta['img_path']})" if 'img_path' in meta else ''
                raise ValueError(
                    f"sample {i}{where} has no 'dataset_idx' in its metainfo, so "
                    'CDCLEncoderDecoder cannot tell which dataset branch it belongs to; load '
                    'data through MultiDataset, or set model.default_dataset')
        return indices

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        """Each dataset's losses, named ``'<dataset>.<head>.<loss>'`` and weighted by w_i."""
        with dataset_context(self, self.dataset_indices(data_samples, len(inputs))):
            losses = super().loss(inputs, data_samples)
        per_dataset = {}
        for key, value in losses.items():
            head, d, name = key.split('.', 2)  # e.g. 'aux.1.loss_ce' from the DAB heads
            weight = self.loss_weights[int(d)]
            if 'loss' in name and weight != 1:
                value = value * weight
            per_dataset[f'{self.dataset_names[int(d)]}.{head}.{name}'] = value
        return per_dataset

    def parse_losses(self, losses: dict) -> Tuple[Tensor, dict]:
        """mmengine's sum of the losses, plus each dataset's total in the log; raises on a
        non-finite loss before any weight is updated.

        Raises:
            FloatingPointError: names the dataset, the loss and the iteration.
        """
        loss, log_vars = super().parse_losses(losses)
        for name in self.dataset_names:
            terms = [v for k, v in log_vars.items() if k.startswith(f'{name}.') and 'loss' in k]
            if terms:
                log_vars[f'{name}.loss'] = sum(terms)
        if not torch.isfinite(loss):
            bad = [f'{k}={float(v)}' for k, v in log_vars.items()
                   if '.' in k and not torch.isfinite(v)]
            iteration = MessageHub.get_current_instance().get_info('iter', -1) + 1
            datasets = sorted({k.split('.')[0] for k in bad})
            raise FloatingPointError(
                f'non-finite loss at iteration {iteration} for dataset(s) {datasets}: '
                + ', '.join(bad) + '; no weights were updated with it')
        return loss, log_vars

    def predict(self, inputs: Tensor, data_samples: Optional[list] = None) -> list:
        """Predict each sample with its dataset's branch and classifier."""
        routing = DatasetRouting.build(self.dataset_indices(data_samples, len(inputs)))
        results = [None] * len(inputs)
        for d, rows in routing.groups:
            positions = range(len(inputs))[rows] if isinstance(rows, slice) else rows.tolist()
            samples = None if data_samples is None else [data_samples[i] for i in positions]
            # Slide inference allocates its output with the routed dataset's classes.
            self.num_classes = self.out_channels = self.decode_head.dataset_num_classes[d]
            with dataset_context(self, d):
                predictions = super().predict(inputs[rows], samples)
            for i, prediction in zip(positions, predictions):
                results[i] = prediction
        return results

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None):
        """Logits of the plain network on each sample's branch (a list for mixed batches)."""
        with dataset_context(self, self.dataset_indices(data_samples, len(inputs))):
            return super()._forward(inputs, data_samples)
