"""One copy of a module per dataset: CDCL's per-dataset classifiers."""

import re
from typing import Iterable

from torch import nn

from .dataset_context import DatasetAwareModule


class DatasetBranches(DatasetAwareModule, nn.ModuleList):
    """Dataset i's copy of a module runs on dataset i's samples: a decode head's classifier
    (``conv_seg``, ``DAHead``'s ``pam_conv_seg``, ``EncHead``'s ``se_layer``, ...) with that
    dataset's number of classes.

    A forward is routed to one dataset (:func:`mmseg_cdcl.dataset_context`); the CDCL segmentor
    runs each head once per dataset of the batch. Checkpoint keys are ``<name>.<i>.<key>``, and a
    plain checkpoint's ``<name>.<key>`` loads into every copy it fits (a Cityscapes model's
    classifier into every 19-class dataset).

    Args:
        branches (Iterable[nn.Module]): One module per dataset, in dataset index order.
    """

    def __init__(self, branches: Iterable[nn.Module]):
        nn.ModuleList.__init__(self, branches)
        self.num_datasets = len(self)

    def forward(self, x, *args, **kwargs):
        routing = self.routing(x.shape[0] if hasattr(x, 'shape') else len(x))
        if routing.single is None:
            raise RuntimeError(
                f'DatasetBranches({self.extra_repr()}) got a batch of several datasets '
                f'{list(routing.datasets)}: '
                'per-dataset classifiers run on one dataset at a time (the CDCL segmentor runs '
                'each head once per dataset)'
            )
        return self[routing.single](x, *args, **kwargs)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        own = re.compile(re.escape(prefix) + r'\d+\.')
        plain = [k for k in state_dict if k.startswith(prefix) and not own.match(k)]
        for key in plain:
            value = state_dict.pop(key)
            name = key[len(prefix) :]
            for d, branch in enumerate(self):
                target = branch.state_dict().get(name)
                if target is not None and target.shape == value.shape:
                    state_dict[f'{prefix}{d}.{name}'] = value
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return f'num_datasets={self.num_datasets}'
