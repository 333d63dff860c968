"""One classifier of universal classes for all datasets: each dataset's labels train it through
its classes' unions (loss −log Σ_{u∈U_d(c)} p(u)), and it predicts in the universal classes or,
summed over the unions, in each dataset's."""

import copy
import logging

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.logging import MMLogger
from mmseg.registry import MODELS

from conftest import seg_samples, small_cdcl_cfg
from mmseg_cdcl.models.decode_heads import is_universal
from mmseg_cdcl.models.layers import DatasetBranches, union_log_probabilities

U = ('v', 'w', 'x', 'y', 'z')
# b's three classes: {v, w}, {x}, {y, z}
UNIONS = dict(a=list(U), b=[['v', 'w'], ['x'], ['y', 'z']])


def _model(num_classes=(5, 3), mapping=UNIONS, universal=True, seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = small_cdcl_cfg(
        num_classes=num_classes,
        label_space=dict(classes=U, mapping=mapping),
        universal_head=universal,
        **kwargs,
    )
    for head in ('decode_head', 'auxiliary_head'):
        cfg[head]['dropout_ratio'] = 0  # deterministic forwards to compare
    model = MODELS.build(ConfigDict(cfg))
    model.init_weights()
    return model


def _stock_cfg():
    cfg = small_cdcl_cfg()
    cfg['backbone'] = dict(cfg['backbone'], type='ResNetV1c')
    cfg['backbone'].pop('num_datasets')
    cfg['decode_head'] = dict(cfg['decode_head'], type='PSPHead', num_classes=5)
    cfg['auxiliary_head'] = dict(cfg['auxiliary_head'], type='FCNHead', num_classes=5)
    return cfg


@pytest.mark.parametrize('form', ['dab', 'converted'])
def test_one_classifier_of_the_universal_classes_in_every_head(form):
    if form == 'dab':
        model = _model()
    else:
        cfg = dict(
            _stock_cfg(),
            num_classes=[5, 3],
            label_space=dict(classes=U, mapping=UNIONS),
            universal_head=True,
        )
        model = MODELS.build(ConfigDict(cfg))
    for head in (model.decode_head, model.auxiliary_head):
        assert is_universal(head)
        assert not any(isinstance(m, DatasetBranches) for m in head.modules())
        assert head.conv_seg.out_channels == len(U)
        with model.dataset(1):  # the routing sets each dataset's classes: the outputs stay
            assert head.num_classes == head.out_channels == len(U)
    assert model.classes_per_dataset() == (5, 3)  # the datasets' own classes
    assert [k for k in model.state_dict() if 'conv_seg' in k] == [
        'decode_head.conv_seg.weight',
        'decode_head.conv_seg.bias',
        'auxiliary_head.conv_seg.weight',
        'auxiliary_head.conv_seg.bias',
    ]


def test_union_log_probabilities_by_hand():
    logits = torch.randn(2, 5, 3, 4)
    p = logits.softmax(1)
    out = union_log_probabilities(logits, [[0, 1], [2], []])
    assert out.shape == (2, 4, 3, 4)
    torch.testing.assert_close(out[:, 0].exp(), p[:, 0] + p[:, 1])
    torch.testing.assert_close(out[:, 1].exp(), p[:, 2])
    assert torch.all(out[:, 2] == -1e4)  # a class of no universal class
    torch.testing.assert_close(out[:, 3].exp(), p[:, 3] + p[:, 4])  # the rest
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2, 3, 4))


@pytest.mark.slow
def test_loss_equals_per_dataset_cross_entropy_when_every_union_is_one_class():
    """a's classes are the universal ones, b's a permutation of them: the universal model's
    losses and gradients are those of per-dataset heads whose classifiers are the universal
    one's rows in each dataset's order."""
    order = [3, 0, 4, 1, 2]
    mapping = dict(a=list(U), b=[U[i] for i in order])
    universal = _model(num_classes=(5, 5), mapping=mapping)
    per_dataset = _model(num_classes=(5, 5), mapping=mapping, universal=False)
    state = universal.state_dict()
    for head in ('decode_head', 'auxiliary_head'):
        for key in ('weight', 'bias'):
            value = state.pop(f'{head}.conv_seg.{key}')
            state[f'{head}.conv_seg.0.{key}'] = value
            state[f'{head}.conv_seg.1.{key}'] = value[order]
    per_dataset.load_state_dict(state)
    x = torch.randn(4, 3, 32, 32)
    samples = seg_samples([0, 1, 0, 1], [5, 5])
    losses, expected = universal.loss(x, samples), per_dataset.loss(x, samples)
    assert set(losses) == set(expected)
    for key in losses:
        torch.testing.assert_close(losses[key], expected[key], rtol=0, atol=1e-6, msg=key)
    universal.parse_losses(losses)[0].backward()
    per_dataset.parse_losses(expected)[0].backward()
    grads = dict(per_dataset.named_parameters())
    for name, p in universal.named_parameters():
        if 'conv_seg' not in name and p.grad is not None:
            torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-6, msg=name)


def _head_loss(model, d, logits, label):
    """The decode head's loss of dataset ``d`` on given logits (N, U, H, W) and labels."""
    samples = seg_samples([d] * len(label), [5, 3], size=tuple(label.shape[1:]))
    for sample, pixels in zip(samples, label):
        sample.gt_sem_seg.data = pixels[None]
    with model.dataset(d):
        return model.decode_head.loss_by_feat(logits, samples)['loss_ce']


def test_a_union_costs_minus_log_of_its_summed_probability():
    model = _model()
    logits = torch.randn(2, 5, 6, 6, requires_grad=True)
    label = torch.randint(0, 3, (2, 6, 6))
    loss = _head_loss(model, 1, logits, label)
    p = logits.softmax(1)
    union = torch.stack([p[:, 0] + p[:, 1], p[:, 2], p[:, 3] + p[:, 4]], 1)
    expected = -union.gather(1, label[:, None]).log().mean()  # MMSeg: mean over pixels
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    # The gradient at a pixel: p_u outside its union, p_u − p_u / P(union) inside it.
    loss.backward()
    members = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=p.dtype)
    inside = members[label].permute(0, 3, 1, 2)  # (N, U, H, W): 1 for the pixel's union
    expected_grad = (p - inside * p / (inside * p).sum(1, keepdim=True)) / label.numel()
    torch.testing.assert_close(logits.grad, expected_grad.detach(), rtol=1e-5, atol=1e-7)


def test_a_class_mapped_to_nothing_is_ignored():
    model = _model(mapping=dict(a=list(U), b=[['v', 'w'], ['x'], []]))
    logits = torch.randn(1, 5, 4, 4, requires_grad=True)
    label = torch.tensor([[[0, 1, 2, 2]] * 4])
    loss = _head_loss(model, 1, logits, label)
    p = logits.softmax(1)
    kept = torch.cat([-(p[:, 0] + p[:, 1])[..., :1].log(), -p[:, 2][..., 1:2].log()], -1)
    torch.testing.assert_close(loss, kept.sum() / label.numel(), rtol=1e-6, atol=1e-6)
    loss.backward()
    assert torch.all(logits.grad[..., 2:] == 0)  # its pixels give no gradient


def test_class_weights_of_a_dataset_apply_to_its_classes():
    model = _model(num_classes=(5, 3))
    model.decode_head.loss_decode.class_weight = [1.0, 3.0, 0.5]  # b's classes
    logits = torch.randn(1, 5, 4, 4)
    label = torch.randint(0, 3, (1, 4, 4))
    loss = _head_loss(model, 1, logits, label)
    p = logits.softmax(1)
    union = torch.stack([p[:, 0] + p[:, 1], p[:, 2], p[:, 3] + p[:, 4]], 1)
    weights = torch.tensor([1.0, 3.0, 0.5])[label]
    expected = (-union.gather(1, label[:, None])[:, 0].log() * weights).sum() / weights.sum()
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    assert model.decode_head.loss_decode.class_weight == [1.0, 3.0, 0.5]


def test_predictions_in_the_universal_classes_or_summed_into_a_datasets():
    model = _model().eval()
    x = torch.randn(2, 3, 32, 32)
    samples = seg_samples([1, 1], [5, 3])
    with torch.no_grad(), model.dataset(1):
        logits = model.encode_decode(x, [s.metainfo for s in samples])
    p = logits.softmax(1)
    with torch.no_grad():
        [result, _] = model.predict(x, copy.deepcopy(samples))
    assert torch.equal(result.pred_sem_seg.data[0], p[0].argmax(0))
    space = result.metainfo['prediction_space']
    assert (space['name'], space['classes']) == ('label_space', U)
    assert list(space['label_maps']) == ['a']  # b's labels cannot be put in the universal space
    model.test_cfg.output_space = 'dataset'
    with torch.no_grad():
        [result, _] = model.predict(x, copy.deepcopy(samples))
    union = torch.stack([p[0, 0] + p[0, 1], p[0, 2], p[0, 3] + p[0, 4]])
    assert torch.equal(result.pred_sem_seg.data[0], union.argmax(0))
    torch.testing.assert_close(result.seg_logits.data.exp(), union)
    assert result.metainfo['prediction_space']['name'] == 'b'


def test_universal_head_needs_a_label_space_and_a_head_with_mmsegs_loss():
    cfg = small_cdcl_cfg(universal_head=True)
    with pytest.raises(ValueError, match='universal_head=True predicts the classes of model.lab'):
        MODELS.build(ConfigDict(cfg))
    cfg = dict(
        _stock_cfg(),
        num_classes=[5, 3],
        label_space=dict(classes=U, mapping=UNIONS),
        universal_head=True,
    )
    cfg['decode_head'] = dict(
        type='EncHead',
        in_channels=[64, 128, 256, 512],
        in_index=(0, 1, 2, 3),
        channels=16,
        num_codes=8,
        num_classes=5,
        use_se_loss=False,
    )
    with pytest.raises(ValueError, match='EncHead computes its loss in its own loss_by_feat'):
        MODELS.build(ConfigDict(cfg))


def test_a_per_dataset_checkpoint_classifier_starts_fresh_in_a_universal_head(tmp_path):
    per_dataset = _model(
        num_classes=(5, 3), mapping=dict(a=list(U), b=['v', 'x', 'y']), universal=False
    )
    universal = _model(seed=1)
    before = universal.decode_head.conv_seg.weight.clone()
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        universal.load_state_dict(per_dataset.state_dict(), strict=False)
    finally:
        logger.removeHandler(handler)
    assert torch.equal(universal.decode_head.conv_seg.weight, before)
    torch.testing.assert_close(
        universal.decode_head.bottleneck.conv.weight,
        per_dataset.decode_head.bottleneck.conv.weight,
    )
    messages = [r.getMessage() for r in records]
    assert any(
        'decode_head.conv_seg of the checkpoint' in m and 'it starts fresh' in m for m in messages
    ), messages
