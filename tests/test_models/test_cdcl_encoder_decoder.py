import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.registry import MODELS

from conftest import seg_samples, small_cdcl_cfg


def _model(seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = small_cdcl_cfg(**kwargs)
    for head in ('decode_head', 'auxiliary_head'):
        cfg[head]['dropout_ratio'] = 0  # deterministic forwards to compare
    model = MODELS.build(ConfigDict(cfg))
    model.init_weights()
    return model


def test_loss_names_and_total_equal_separate_per_dataset_losses():
    model = _model(loss_weights=dict(b=0.5))
    x = torch.randn(4, 3, 32, 32)
    samples = seg_samples([0, 0, 1, 1], [5, 3])
    separate = copy.deepcopy(model)
    separate.loss_weights = [1.0, 1.0]
    losses = model.loss(x, samples)
    assert set(losses) == {
        f'{n}.{h}.{k}' for n in 'ab' for h in ('decode', 'aux') for k in ('loss_ce', 'acc_seg')
    }
    total, _ = model.parse_losses(losses)

    expected_total = 0
    for d, name, weight in [(0, 'a', 1.0), (1, 'b', 0.5)]:
        rows = slice(2 * d, 2 * d + 2)
        alone = separate.loss(x[rows], samples[rows])  # a batch of this dataset only
        for head in ('decode', 'aux'):
            key = f'{name}.{head}.loss_ce'
            torch.testing.assert_close(losses[key], weight * alone[key], rtol=1e-5, atol=1e-6)
            expected_total = expected_total + losses[key]
    torch.testing.assert_close(total, expected_total, rtol=0, atol=0)


def test_gradients_equal_separate_forwards():
    model = _model()
    separate = copy.deepcopy(model)
    x = torch.randn(4, 3, 32, 32)
    samples = seg_samples([0, 1, 0, 1], [5, 3])  # interleaved datasets
    model.parse_losses(model.loss(x, samples))[0].backward()
    total = 0
    for d in (0, 1):
        rows = [i for i in range(4) if samples[i].dataset_idx == d]
        total = total + separate.parse_losses(separate.loss(x[rows], [samples[i] for i in rows]))[0]
    total.backward()
    for (name, p), q in zip(model.named_parameters(), separate.parameters()):
        if p.grad is not None or q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_predict_routes_each_sample_to_its_branch(mode):
    model = _model().eval()
    model.test_cfg = ConfigDict(mode=mode, crop_size=(24, 24), stride=(16, 16))
    x = torch.randn(3, 3, 32, 32)
    samples = seg_samples([1, 0, 1], [5, 3])
    with torch.no_grad():
        mixed = model.predict(x, samples)
        alone = [model.predict(x[i : i + 1], [samples[i]])[0] for i in range(3)]
    assert [r.seg_logits.data.shape[0] for r in mixed] == [3, 5, 3]
    for r, a in zip(mixed, alone):
        torch.testing.assert_close(r.seg_logits.data, a.seg_logits.data, rtol=1e-5, atol=1e-5)
        assert r.pred_sem_seg.data.max() < r.seg_logits.data.shape[0]


def test_missing_dataset_idx_is_an_error_unless_default():
    model = _model().eval()
    samples = seg_samples([0], [5, 3])
    del samples[0].dataset_idx
    samples[0].set_metainfo(dict(img_path='x/frankfurt_000000.png'))
    with pytest.raises(
        ValueError,
        match=r'sample 0 \(x/frankfurt_000000.png\) has no '
        r"'dataset_idx' in its metainfo",
    ):
        model.predict(torch.randn(1, 3, 32, 32), samples)
    model = _model(default_dataset='b').eval()
    with torch.no_grad():
        result = model.predict(torch.randn(1, 3, 32, 32), samples)
    assert result[0].seg_logits.data.shape[0] == 3
    assert model(torch.randn(2, 3, 32, 32), mode='tensor').shape == (2, 3, 4, 4)


def test_dataset_name_routes_before_dataset_idx():
    """MultiDataset's order need not be the model's: samples are routed by name."""
    model = _model().eval()
    samples = seg_samples([0, 0], [5, 3])
    samples[1].set_metainfo(dict(dataset_name='b'))
    assert model.dataset_indices(samples, 2) == [0, 1]
    samples[0].set_metainfo(dict(dataset_name='z'))
    with pytest.raises(
        ValueError,
        match=r"sample 0's dataset_name='z' is not one of the "
        r"datasets \['a', 'b'\]",
    ):
        model.dataset_indices(samples, 2)


def test_config_errors():
    with pytest.raises(
        ValueError,
        match=r"CDCLEncoderDecoder has 3 datasets \['a', 'b', 'c'\] "
        r'but not as many dataset branches in: backbone.stem.1 '
        r'\(DSBN\) has 2',
    ):
        MODELS.build(ConfigDict(small_cdcl_cfg(names=('a', 'b', 'c'))))
    with pytest.raises(ValueError, match=r"loss_weights names unknown datasets \['z'\]"):
        _model(loss_weights=dict(z=2))
    with pytest.raises(
        ValueError,
        match=r"default_dataset='c' is not one of the datasets "
        r"\['a', 'b'\]",
    ):
        _model(default_dataset='c')


def test_dataset_names_containing_loss_add_only_losses():
    """mmengine's parse_losses sums every log variable whose name contains 'loss'."""
    model = _model(names=('glossy_roads', 'b'))
    losses = model.loss(torch.randn(4, 3, 32, 32), seg_samples([0, 0, 1, 1], [5, 3]))
    total, log_vars = model.parse_losses(losses)
    terms = [v for k, v in losses.items() if k.rpartition('.')[2].startswith('loss')]
    assert len(terms) == 4 and 'glossy_roads.decode.acc_seg' in log_vars
    torch.testing.assert_close(total, sum(terms), rtol=0, atol=0)
    assert float(log_vars['loss']) == pytest.approx(float(total))
    assert float(log_vars['glossy_roads.loss']) == pytest.approx(
        float(losses['glossy_roads.decode.loss_ce'] + losses['glossy_roads.aux.loss_ce'])
    )


def test_one_sample_of_a_dataset_before_a_1x1_pooling_names_the_dataset():
    model = _model(names=('cityscapes', 'bdd100k'))
    with pytest.raises(
        ValueError,
        match=r"dataset 'bdd100k': DSBN\(32, num_datasets=2\): "
        r'dataset 1 has 1 value per channel in this training '
        r'batch',
    ):
        model.loss(torch.randn(3, 3, 32, 32), seg_samples([0, 0, 1], [5, 3]))


def test_gradient_checkpointing_trains_as_without_it():
    """MMSeg's with_cp recomputes backbone blocks in the backward, outside dataset_context."""
    model = _model()
    checkpointed = copy.deepcopy(model)
    for layer in checkpointed.backbone.modules():
        if hasattr(layer, 'with_cp'):
            layer.with_cp = True
    x = torch.randn(4, 3, 32, 32)
    samples = seg_samples([0, 1, 0, 1], [5, 3])
    for m in (model, checkpointed):
        m.parse_losses(m.loss(x, samples))[0].backward()
    for (name, p), q in zip(model.named_parameters(), checkpointed.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize(
    'names, message',
    [
        (('a', 'a'), r"dataset_names=\['a', 'a'\] names a dataset twice"),
        (('a', 'b.c'), r"dataset name 'b.c': expected a non-empty string without '.' or '/'"),
        (('a', ''), r"dataset name '': expected a non-empty string"),
    ],
)
def test_dataset_name_errors(names, message):
    with pytest.raises(ValueError, match=message):
        _model(names=names)


NEVER_BUILT = dict(type='BackboneThatIsNeverBuilt')  # reaching it raises a KeyError


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (
            dict(branch_selection=dict(temperature=0)),
            r'branch selection temperature=0: expected a positive finite number',
        ),
        (
            dict(branch_selection=dict(temperature=-0.1)),
            r'branch selection temperature=-0.1: expected a positive finite number',
        ),
        (
            dict(default_dataset='ensemble'),
            r"default_dataset='ensemble' adds the branches' probabilities, but the datasets have "
            r"other classes \{'a': 5, 'b': 3\}: set model.label_space \(LabelSpace: one output "
            r'label '
            r"space, each dataset's classes mapped to it\) or use default_dataset='auto'",
        ),
        (dict(default_dataset='c'), r"default_dataset='c' is not one of the datasets \['a', 'b'\]"),
        (dict(loss_weights=dict(z=2)), r"loss_weights names unknown datasets \['z'\]"),
    ],
)
def test_config_errors_come_before_the_model_is_built(kwargs, message):
    cfg = small_cdcl_cfg(**kwargs)
    with pytest.raises(ValueError, match=message):
        MODELS.build(ConfigDict(cfg))
    cfg['backbone'] = NEVER_BUILT
    with pytest.raises(ValueError, match=message):
        MODELS.build(ConfigDict(cfg))
    with pytest.raises(KeyError, match='BackboneThatIsNeverBuilt is not in the'):
        MODELS.build(ConfigDict(small_cdcl_cfg(), backbone=NEVER_BUILT))  # a valid config's


def test_ensemble_of_datasets_with_the_same_or_mapped_classes_builds():
    assert _model(num_classes=(5, 5), default_dataset='ensemble').default_dataset == 'ensemble'
    space = dict(classes=('x', 'y'), mapping=dict(a=['x', 'x', 'y', 'y', None], b=['y', 'x', None]))
    model = _model(default_dataset='ensemble', label_space=space)
    assert model.label_space.tables == [[0, 0, 1, 1, 255], [1, 0, 255]]


def test_num_classes_of_another_length_is_refused_before_the_model_is_built():
    from mmseg_cdcl.utils import load_config

    cfg = load_config('mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py').model
    cfg.update(
        type='CDCLEncoderDecoder',
        dataset_names=['a', 'b'],
        num_classes=[19, 11, 19],
        pretrained=None,
        backbone=NEVER_BUILT,
    )
    with pytest.raises(
        ValueError,
        match=r'num_classes=\[19, 11, 19\]: expected one class '
        r"count per dataset \['a', 'b'\]",
    ):
        MODELS.build(cfg)
