"""L = Σ_i w_i·L_i: each dataset's losses weighted, named by dataset, summed by mmengine."""

import math

import pytest
import torch
from mmengine.model import BaseModel

from mmseg_cdcl.models.losses import (
    dataset_loss_weights,
    parse_dataset_losses,
    weighted_dataset_losses,
)

NAMES = ('loss_city', 'b')  # a dataset name containing 'loss' must not make a term a loss


def _parse(losses):
    return BaseModel.parse_losses(None, losses)


def test_weights_scale_losses_only_and_name_them_by_dataset():
    per_dataset = {
        0: {'decode.loss_ce': torch.tensor(2.0), 'decode.acc_seg': torch.tensor(50.0)},
        1: {
            'decode.loss_ce': torch.tensor(3.0),
            'aux.loss_ce': [torch.tensor(1.0), torch.tensor(4.0)],
        },
    }
    weighted = weighted_dataset_losses(per_dataset, NAMES, [1.0, 0.5])
    assert {
        k: (v if isinstance(v, list) else float(v))
        for k, v in weighted.items()
        if not isinstance(v, list)
    } == {
        'loss_city.decode.loss_ce': 2.0,
        'loss_city.decode.acc_seg': 50.0,
        'b.decode.loss_ce': 1.5,
    }
    assert [float(v) for v in weighted['b.aux.loss_ce']] == [0.5, 2.0]


def test_parse_sums_the_weighted_losses_and_logs_each_datasets_total():
    losses = {
        'loss_city.decode.loss_ce': torch.tensor(2.0),
        'loss_city.decode.acc_seg': torch.tensor(50.0),
        'b.decode.loss_ce': torch.tensor(1.5),
        'b.aux.loss_ce': torch.tensor(0.25),
    }
    loss, log_vars = parse_dataset_losses(losses, NAMES, _parse)
    assert float(loss) == 3.75
    assert float(log_vars['loss']) == 3.75
    assert float(log_vars['loss_city.loss']) == 2.0 and float(log_vars['b.loss']) == 1.75
    assert float(log_vars['loss_city.decode.acc_seg']) == 50.0


def test_a_non_finite_loss_names_its_dataset():
    losses = {
        'loss_city.decode.loss_ce': torch.tensor(2.0),
        'b.decode.loss_ce': torch.tensor(math.nan),
    }
    with pytest.raises(
        FloatingPointError,
        match=r'non-finite loss at iteration \d+ for '
        r"dataset\(s\) \['b'\]: b.decode.loss_ce=nan",
    ):
        parse_dataset_losses(losses, NAMES, _parse)


def test_loss_weights_by_list_or_name():
    assert dataset_loss_weights(None, NAMES) == [1.0, 1.0]
    assert dataset_loss_weights(dict(b=0.5), NAMES) == [1.0, 0.5]
    assert dataset_loss_weights([2, 3], NAMES) == [2.0, 3.0]
    with pytest.raises(
        ValueError,
        match=r"loss_weights names unknown datasets \['z'\]; the "
        r"datasets are \['loss_city', 'b'\]",
    ):
        dataset_loss_weights(dict(z=1), NAMES)
    with pytest.raises(ValueError, match=r'loss_weights has 1 entries but there are 2 datasets'):
        dataset_loss_weights([1], NAMES)
