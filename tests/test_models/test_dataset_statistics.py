"""Running statistics other than BatchNorm's (EMANet's bases) are one per dataset: found by a
training forward, not listed, or warned about by name."""

import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS
from torch import nn

from conftest import assert_mixed_batch_equals_datasets_alone, seg_samples, small_cdcl_cfg
from mmseg_cdcl.apis.export import plain_state_dict
from mmseg_cdcl.models.layers import DatasetStatistics
from mmseg_cdcl.utils import load_config


class RunningMean(nn.Module):
    """Subtracts a running mean of its inputs' channels, updated in training."""

    def __init__(self, channels):
        super().__init__()
        self.register_buffer('mean', torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        if self.training:
            self.mean = 0.9 * self.mean + 0.1 * x.detach().mean((0, 2, 3), keepdim=True)
        return x - self.mean


@MODELS.register_module(force=True)
class RunningMeanNeck(nn.Module):
    """A neck that centres the last feature map with a running mean (batches mix datasets)."""

    def __init__(self, channels=512):
        super().__init__()
        self.centre = RunningMean(channels)

    def forward(self, feats):
        return [*feats[:-1], self.centre(feats[-1])]


@MODELS.register_module(force=True)
class LargeInputNeck(RunningMeanNeck):
    """A neck for inputs of 128 pixels or more."""

    def forward(self, feats):
        if feats[-1].shape[-1] < 16:
            raise ValueError(f'LargeInputNeck: features of {feats[-1].shape[-1]} pixels')
        return super().forward(feats)


@MODELS.register_module(force=True)
class RunningMeanFCNHead(FCNHead):
    """An FCN head that keeps a running mean of its input itself, not in a submodule."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer('feature_mean', torch.zeros(self.in_channels))

    def forward(self, inputs):
        if self.training:
            x = self._transform_inputs(inputs).detach()
            self.feature_mean = 0.9 * self.feature_mean + 0.1 * x.mean((0, 2, 3))
        return super().forward(inputs)


def test_emanet_bases_are_per_dataset_and_a_mixed_batch_equals_its_datasets_alone():
    cfg = load_config('mmseg::_base_/models/emanet_r50-d8.py').model
    cfg.update(
        type='CDCLEncoderDecoder', dataset_names=['a', 'b'], num_classes=[19, 11], pretrained=None
    )
    cfg.decode_head.dropout_ratio = cfg.auxiliary_head.dropout_ratio = 0
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    ema = model.decode_head.ema_module
    assert isinstance(ema, DatasetStatistics) and len(ema) == 2
    initial = ema[0].bases.clone()
    torch.testing.assert_close(ema[1].bases, initial, rtol=0, atol=0)  # both from the stock's

    model.double()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)  # a 4x4 feature map: EMA's 16 pixels
    samples = seg_samples([0, 1, 0, 1], [19, 11], size=(32, 32))
    assert_mixed_batch_equals_datasets_alone(model.train(), x, samples, [[0, 2], [1, 3]])
    assert (ema[0].bases - initial).abs().max() > 1e-3  # each moved, by its own samples
    assert (ema[0].bases - ema[1].bases).abs().max() > 1e-3

    # Export: dataset b's copy under MMSeg's key, which the stock EMANet loads.
    plain = plain_state_dict(model.state_dict(), 1, model)
    torch.testing.assert_close(plain['decode_head.ema_module.bases'], ema[1].bases, rtol=0, atol=0)
    stock = load_config('mmseg::_base_/models/emanet_r50-d8.py').model
    stock.update(
        pretrained=None, decode_head=dict(num_classes=11), auxiliary_head=dict(num_classes=11)
    )
    assert set(plain) == set(MODELS.build(stock).state_dict())


def test_a_statistic_in_the_mixed_batch_path_is_per_dataset():
    """A neck's running mean sees the batch of all datasets: each dataset's copy runs on its
    samples, interleaved or not."""
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(small_cdcl_cfg(neck=dict(type='RunningMeanNeck'))))
    for head in (model.decode_head, model.auxiliary_head):
        head.dropout = None
    assert isinstance(model.neck.centre, DatasetStatistics)
    assert [n for n, _ in model.named_buffers() if 'centre' in n] == [
        'neck.centre.0.mean',
        'neck.centre.1.mean',
    ]
    model.double()
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    for order in ([0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 1, 0]):
        samples = seg_samples(order, [5, 3])
        groups = [[i for i, d in enumerate(order) if d == k] for k in (0, 1)]
        assert_mixed_batch_equals_datasets_alone(copy.deepcopy(model).train(), x, samples, groups)


def test_a_statistic_a_component_holds_itself_is_warned_about_by_name():
    cfg = small_cdcl_cfg()
    cfg['decode_head'] = dict(
        type='RunningMeanFCNHead',
        in_channels=512,
        in_index=3,
        channels=16,
        num_convs=1,
        num_classes=5,
    )
    cfg.update(type='CDCLEncoderDecoder', num_classes=[5, 3])
    cfg['backbone'] = dict(cfg['backbone'], type='ResNetV1c', norm_cfg=dict(type='BN'))
    cfg['backbone'].pop('num_datasets')
    cfg['auxiliary_head'] = None
    with pytest.warns(
        UserWarning,
        match=r'CDCL: decode_head \(RunningMeanFCNHead\) updates its '
        r"buffers \['feature_mean'\] from the inputs in "
        r'training, and as a head it cannot be copied per '
        r'dataset: the datasets share them',
    ):
        model = MODELS.build(ConfigDict(cfg))
    assert not any(isinstance(m, DatasetStatistics) for m in model.modules())


def test_a_model_the_probe_cannot_run_is_warned_about_with_its_buffers():
    with pytest.warns(
        UserWarning,
        match=r'CDCL: cannot tell whether the buffers '
        r"\['neck.centre.mean'\] are updated from the inputs in "
        r'training \(a training forward of 2 64x64 images '
        r'raised ValueError: LargeInputNeck: features of 8 '
        r'pixels\); if they are, the datasets share them',
    ):
        model = MODELS.build(ConfigDict(small_cdcl_cfg(neck=dict(type='LargeInputNeck'))))
    assert isinstance(model.neck.centre, RunningMean)


def test_the_probe_leaves_the_model_and_the_random_stream_as_they_were():
    """Finding the statistics runs a training forward (dropout, BatchNorm updates): the built
    model's buffers are the initial ones and the random numbers drawn after building are those
    of a model without the probe."""
    models, draws = [], []
    for neck in (None, dict(type='RunningMeanNeck')):
        torch.manual_seed(0)
        models.append(MODELS.build(ConfigDict(small_cdcl_cfg(neck=neck))))
        draws.append(torch.rand(3))
    torch.testing.assert_close(draws[0], draws[1], rtol=0, atol=0)
    plain, probed = (dict(m.state_dict()) for m in models)
    assert [k for k in probed if k not in plain] == ['neck.centre.0.mean', 'neck.centre.1.mean']
    for key, value in plain.items():
        torch.testing.assert_close(probed[key], value, rtol=0, atol=0, msg=key)
    assert not probed['neck.centre.0.mean'].any() and not probed['neck.centre.1.mean'].any()
    assert [m.training for m in models[0].modules()] == [
        m.training
        for m in models[1].modules()
        if not isinstance(m, (DatasetStatistics, RunningMean, RunningMeanNeck))
    ]
