"""Unknown-source inference runs the backbone once per image where its features do not depend
on the branch (models/utils/unknown_source.py: SharedFeatures)."""

from types import SimpleNamespace

import torch
from torch import nn

from mmseg_cdcl.models.layers import DSBN
from mmseg_cdcl.models.utils.unknown_source import SharedFeatures


def _counting():
    calls = []

    def extract(inputs):
        calls.append(inputs)
        return [inputs * 2]

    return extract, calls


def _model(norm: nn.Module):
    return SimpleNamespace(backbone=nn.Sequential(nn.Conv2d(3, 3, 1), norm), with_neck=False)


def test_features_of_the_same_data_are_computed_once_while_shared():
    shared, (extract, calls) = SharedFeatures(), _counting()
    x = torch.randn(1, 3, 4, 4)
    with shared.sharing(_model(nn.LayerNorm(4))):
        first = shared.extract(x, extract)
        assert shared.extract(x, extract) is first
        assert shared.extract(x[:], extract) is first  # a view of the same elements
        assert len(calls) == 1
        x.add_(1)  # changed in place: computed again
        assert torch.equal(shared.extract(x, extract)[0], x * 2)
        shared.extract(torch.randn(1, 3, 4, 4), extract)
        assert len(calls) == 3
    shared.extract(x, extract)
    shared.extract(x, extract)
    assert len(calls) == 5  # outside sharing, every call computes


def test_features_of_dataset_aware_backbones_are_never_shared():
    shared, (extract, calls) = SharedFeatures(), _counting()
    x = torch.randn(1, 3, 4, 4)
    with shared.sharing(_model(DSBN(3, 2))):
        shared.extract(x, extract)
        shared.extract(x, extract)
    assert len(calls) == 2
