"""DatasetRouting partitions a batch: each dataset's positions and parts, whatever the order."""

import pytest
import torch

from mmseg_cdcl.models.layers import DatasetRouting

ORDERS = [
    [1, 1, 1, 1],  # one dataset: the whole batch
    [0, 0, 1, 1, 1],  # contiguous groups: slices
    [0, 1, 2, 0, 1, 2],  # alternating datasets: strided slices
    [1, 0, 0, 2, 1, 0],  # any other order: index tensors
]


@pytest.mark.parametrize('order', ORDERS)
def test_positions_are_each_datasets_samples_in_batch_order(order):
    routing = DatasetRouting.build(order)
    expected = [[i for i, d in enumerate(order) if d == dataset] for dataset in routing.datasets]
    assert [list(p) for p in routing.positions(len(order))] == expected
    assert sorted(routing.datasets) == sorted(set(order))


def test_positions_of_a_whole_batch_routing_take_the_batch_size():
    assert DatasetRouting.build(2).positions(3) == ([0, 1, 2],)


def test_positions_refuse_another_batch_size():
    with pytest.raises(ValueError, match='a routing of 4 samples cannot partition a batch of 5'):
        DatasetRouting.build([0, 0, 1, 1]).positions(5)


@pytest.mark.parametrize('order', ORDERS)
def test_split_of_a_backbones_outputs_gives_each_group_its_rows(order):
    routing = DatasetRouting.build(order)
    feats = [torch.randn(len(order), 2, 3, 3), torch.randn(len(order), 4, 2, 2)]
    parts = routing.split(tuple(feats))
    assert len(parts) == len(routing.groups)
    for part, positions in zip(parts, routing.positions(len(order))):
        assert isinstance(part, tuple) and len(part) == 2
        for tensor, whole in zip(part, feats):
            assert torch.equal(tensor, whole[positions])
    assert routing.split('shape') == ('shape',) * len(routing.groups)
