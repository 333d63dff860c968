"""Images of unknown source: the branch their DSBN statistics choose, all branches combined, and
every route for evaluation."""

import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS

from conftest import seg_samples, small_cdcl_cfg
from mmseg_cdcl import dataset_context
from mmseg_cdcl.models.layers import DSBN

LABEL_SPACE = dict(
    classes=('ground', 'thing', 'sky'),
    mapping=dict(a=['ground', 'ground', 'thing', 'thing', 'sky'], b=['thing', None, 'sky']),
)
SPLITS = dict(
    cityscapes=('CityscapesDataset', 'leftImg8bit/{}', 'gtFine/{}'),
    bdd100k=('BDD100KDataset', 'images/10k/{}', 'labels/sem_seg/masks/{}'),
)


@pytest.fixture(scope='module')
def shifted(tmp_path_factory):
    """Generated Cityscapes and BDD100K (BDD100K darker, bluer, noisier) and a CDCL model whose
    DSBN branches hold each dataset's statistics: its training images through its branch."""
    from mmseg_cdcl.testing import make_demo_data

    init_default_scope('mmseg')  # module-scoped: before conftest's per-test fixture
    root = tmp_path_factory.mktemp('shifted')
    make_demo_data(
        str(root),
        datasets=tuple(SPLITS),
        num_images=dict(train=8, val=24),
        image_size=(64, 128),
        seed=1,
    )
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(small_cdcl_cfg(num_classes=(19, 19), names=tuple(SPLITS))))
    images = {}
    for split in ('train', 'val'):
        for name, (kind, img, ann) in SPLITS.items():
            dataset = DATASETS.build(
                dict(
                    type=kind,
                    data_root=str(root / name),
                    pipeline=[dict(type='LoadImageFromFile'), dict(type='PackSegInputs')],
                    data_prefix=dict(img_path=img.format(split), seg_map_path=ann.format(split)),
                )
            )
            batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
            images[split, name] = model.data_preprocessor(batch, False)['inputs']
    for m in model.modules():
        if isinstance(m, DSBN):
            for bn in m.bns:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative: each branch's statistics of all its images
    with torch.no_grad():
        for d, name in enumerate(SPLITS):
            with dataset_context(model, d):
                model.train().extract_feat(images['train', name])
    return model.eval(), images


def test_auto_picks_the_dataset_an_image_comes_from(shifted):
    model, images = shifted
    chosen = {
        name: model.branch_selector(model, images['val', name])[0].tolist() for name in SPLITS
    }
    correct = chosen['cityscapes'].count(0) + chosen['bdd100k'].count(1)
    # 48 of 48 measured; chance is 24.
    assert correct >= 44, chosen


@pytest.mark.parametrize(
    'selector',
    [dict(), dict(num_layers=3), dict(num_layers=2, distance='kl')],
    ids=['first-layer', 'three-layers', 'two-layers-kl'],
)
def test_an_images_choice_does_not_depend_on_its_batch(shifted, selector):
    from mmseg_cdcl.models.utils import BranchSelector

    model, images = shifted
    selector = BranchSelector(**selector)
    mixed = torch.cat([images['val', 'cityscapes'][:3], images['val', 'bdd100k'][:3]])[
        torch.tensor([0, 3, 4, 1, 5, 2])
    ]
    together = selector.distances(model, mixed)
    alone = torch.cat([selector.distances(model, x[None]) for x in mixed])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    assert together.argmin(1).tolist() == [0, 1, 1, 0, 1, 0]


def _toy(default_dataset, label_space=LABEL_SPACE):
    torch.manual_seed(0)
    cfg = small_cdcl_cfg(default_dataset=default_dataset, label_space=label_space)
    for head in ('decode_head', 'auxiliary_head'):
        cfg[head]['dropout_ratio'] = 0
    model = MODELS.build(ConfigDict(cfg))
    model.init_weights()
    with torch.no_grad():  # branches with distinct statistics
        for m in model.modules():
            if isinstance(m, DSBN):
                m.bns[1].running_mean.fill_(0.5)
                m.bns[1].running_var.fill_(2.0)
    return model.eval()


@pytest.mark.slow
def test_auto_routes_each_image_and_reports_its_scores():
    model = _toy('auto')
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        results = model.predict(x)
        choice, scores = model.branch_selector(model, x)
    for i, result in enumerate(results):
        d = int(choice[i])
        assert result.dataset_name == 'ab'[d]
        assert result.dataset_scores == pytest.approx(
            dict(a=float(scores[i, 0]), b=float(scores[i, 1]))
        )
        assert sum(result.dataset_scores.values()) == pytest.approx(1)
        routed = copy.deepcopy(model)
        routed.default_dataset = d  # the chosen branch, in the label space's 3 classes
        with torch.no_grad():
            expected = routed.predict(x[i : i + 1])[0]
        assert result.seg_logits.data.shape[0] == 3
        torch.testing.assert_close(result.seg_logits.data, expected.seg_logits.data)


@pytest.mark.slow
def test_ensemble_is_the_score_weighted_sum_of_the_branches_probabilities():
    model = _toy('ensemble')
    x = torch.randn(2, 3, 32, 32)
    metas = [
        dict(ori_shape=(32, 32), img_shape=(32, 32), pad_shape=(32, 32), padding_size=[0] * 4)
    ] * 2
    with torch.no_grad():
        results = model.predict(x)
        _, scores = model.branch_selector(model, x)
        expected = 0
        for d in range(2):
            with model.dataset(d):
                logits = model.inference(x, metas)  # (2, classes of dataset d, 32, 32)
            probs = logits.softmax(1)
            target = torch.zeros(2, 3, 32, 32)
            for source, name in enumerate(LABEL_SPACE['mapping']['ab'[d]]):
                if name is not None:  # by hand: a class's probability to its target class
                    target[:, LABEL_SPACE['classes'].index(name)] += probs[:, source]
            expected = expected + scores[:, d].view(-1, 1, 1, 1) * target
    for i, result in enumerate(results):
        torch.testing.assert_close(result.seg_logits.data.exp(), expected[i], rtol=1e-5, atol=1e-6)
        assert torch.equal(result.pred_sem_seg.data[0], expected[i].argmax(0))
    uniform = _toy('ensemble')
    uniform.test_cfg.ensemble_weights = 'uniform'
    with torch.no_grad():
        flat = uniform.predict(x)
    assert not torch.allclose(flat[0].seg_logits.data, results[0].seg_logits.data)


def test_known_datasets_predict_in_the_label_space():
    model = _toy(None)
    samples = seg_samples([1, 0], [5, 3])
    with torch.no_grad():
        results = model.predict(torch.randn(2, 3, 32, 32), samples)
    assert [r.seg_logits.data.shape[0] for r in results] == [3, 3]


def test_combining_branches_of_other_classes_needs_a_label_space():
    """Refused when the model is built, and by the ensemble itself where the route is set
    later."""
    with pytest.raises(
        ValueError,
        match=r"default_dataset='ensemble' adds the branches' "
        r'probabilities, but the datasets have other classes '
        r"\{'a': 5, 'b': 3\}: set model.label_space",
    ):
        _toy('ensemble', label_space=None)
    cfg = small_cdcl_cfg()
    cfg['test_cfg'] = dict(mode='whole', unknown_source=True)
    with pytest.raises(
        ValueError,
        match=r'test_cfg.unknown_source=True \(its ensemble route\) '
        r"adds the branches' probabilities, but the datasets "
        r"have other classes \{'a': 5, 'b': 3\}: set "
        r'model.label_space \(LabelSpace: one output label '
        r"space, each dataset's classes mapped to it\)$",
    ):
        MODELS.build(ConfigDict(cfg))
    model = _toy(None, label_space=None)
    model.default_dataset = 'ensemble'
    with pytest.raises(
        ValueError,
        match=r'combining the branches of datasets with other '
        r"classes \{'a': 5, 'b': 3\} needs one output label "
        r'space: set model.label_space',
    ):
        model.predict(torch.randn(1, 3, 32, 32))


def test_every_route_for_evaluation():
    model = _toy(None)
    model.test_cfg.unknown_source = True
    samples = seg_samples([0, 1], [5, 3])
    samples[1].set_metainfo(dict(dataset_name='kitti'))  # a dataset the model never saw
    samples[0].set_metainfo(dict(dataset_name='a'))
    with torch.no_grad():
        results = model.predict(torch.randn(2, 3, 32, 32), samples)
    assert [r.source_dataset for r in results] == ['a', 'kitti']
    assert {k for k in results[0].keys() if k.startswith('pred_')} == {
        'pred_sem_seg',
        'pred_auto',
        'pred_ensemble',
        'pred_oracle',
        'pred_branch_a',
        'pred_branch_b',
    }
    assert 'pred_oracle' not in results[1]
    for result in results:
        chosen = result.get(f'pred_branch_{result.dataset_name}').data
        assert torch.equal(result.pred_sem_seg.data, chosen)
        assert torch.equal(result.pred_auto.data, chosen)
    assert torch.equal(results[0].pred_oracle.data, results[0].pred_branch_a.data)


def test_a_model_whose_dsbns_are_all_in_its_heads_chooses_from_the_first_of_them():
    """SegFormer's backbone has LayerNorms only: its first DSBN is in the decode head."""
    from mmseg_cdcl.models.utils.branch_selection import distance
    from mmseg_cdcl.utils import load_config

    cfg = load_config('mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py').model
    cfg.update(
        type='CDCLEncoderDecoder',
        dataset_names=['a', 'b'],
        num_classes=[19, 11],
        pretrained=None,
        default_dataset='auto',
    )
    cfg.backbone.norm_cfg = dict(type='GN', num_groups=8, requires_grad=True)
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    first = model.decode_head.convs[0]
    assert not any(isinstance(m, DSBN) for m in model.backbone.modules())
    assert isinstance(first.bn, DSBN)
    with torch.no_grad():
        first.bn.bns[1].running_mean.fill_(0.5)
        first.bn.bns[1].running_var.fill_(2.0)
        x = torch.randn(3, 3, 64, 64)
        choice, scores = model.branch_selector(model, x)
        features = first.conv(model.extract_feat(x)[model.decode_head.in_index])
        flat = features.flatten(2)
        mean, var = flat.mean(2), flat.var(2, unbiased=False)
        expected = torch.stack(
            [distance(mean, var, bn, 'wasserstein', bn.eps) for bn in first.bn.bns], 1
        )
        calls = []
        hook = model.backbone.register_forward_hook(lambda *_: calls.append(1))
        results = model.predict(x)
        hook.remove()
        routed = copy.deepcopy(model)
        routed.default_dataset = int(choice[0])
        expected_logits = routed.predict(x[:1])[0].seg_logits.data
    torch.testing.assert_close(scores, (-expected / 0.1).softmax(1))
    assert choice.tolist() == expected.argmin(1).tolist()
    assert [r.dataset_name for r in results] == ['ab'[d] for d in choice.tolist()]
    assert [r.seg_logits.data.shape[0] for r in results] == [(19, 11)[d] for d in choice]
    # The branches share the backbone's features: it ran once, for the choice and the prediction,
    # also where slide inference's one window is a view of the image.
    assert len(calls) == 1
    torch.testing.assert_close(results[0].seg_logits.data, expected_logits)
    model.test_cfg = ConfigDict(mode='slide', crop_size=(64, 64), stride=(64, 64))
    hook = model.backbone.register_forward_hook(lambda *_: calls.append(2))
    with torch.no_grad():
        slid = model.predict(x)
    hook.remove()
    assert calls == [1, 2]
    torch.testing.assert_close(slid[0].seg_logits.data, expected_logits)
