"""A checkpoint states its datasets; loading maps its branches to the model's by name."""

import copy
import re
from collections import OrderedDict

import pytest
import torch
from mmengine.model import ExponentialMovingAverage
from mmengine.runner import load_checkpoint, save_checkpoint
from mmseg.registry import MODELS
from torch import nn

from conftest import logged, small_cdcl_cfg
from mmseg_cdcl.apis import init_cdcl_model, load_cdcl_checkpoint
from mmseg_cdcl.models.utils.checkpoint_datasets import (
    state_datasets_from_meta,
    stated,
    trained_dataset_names,
)
from mmseg_cdcl.utils import load_config


def _trained(num_classes=(5, 3), names=('a', 'b'), seed=0, **kwargs):
    """A small CDCL model whose branches differ, as training leaves them."""
    torch.manual_seed(seed)
    model = MODELS.build(small_cdcl_cfg(num_classes, names, **kwargs))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2)
    return model.eval()


def _saved(model, path, meta=None):
    save_checkpoint(dict(state_dict=model.state_dict(), meta=meta or {}), str(path))
    return str(path)


def _logits(model, dataset, x):
    model.eval()
    with torch.no_grad():
        model.default_dataset = model.dataset_index(dataset)
        return model(x, mode='tensor')


X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_the_state_dict_states_the_datasets_and_weights_only_loading_keeps_it(tmp_path):
    model = _trained()
    path = _saved(model, tmp_path / 'ab.pth')
    stated = torch.load(path, weights_only=True)['state_dict']._metadata['']
    assert stated['dataset_names'] == ['a', 'b']
    assert stated['datasets'] == dict(
        a=dict(num_classes=5, ignore_index=255, classes=None, palette=None),
        b=dict(num_classes=3, ignore_index=255, classes=None, palette=None),
    )
    # class names and colours, where the model knows them, are stated too and learned back
    model.set_dataset_classes(dict(b=('p', 'q', 'r')), dict(b=[[1, 2, 3]] * 3))
    path = _saved(model, tmp_path / 'named.pth')
    stated = torch.load(path, weights_only=True)['state_dict']._metadata['']
    assert stated['datasets']['b'] == dict(
        num_classes=3, ignore_index=255, classes=['p', 'q', 'r'], palette=[[1, 2, 3]] * 3
    )
    loaded = MODELS.build(small_cdcl_cfg((5, 3), ('a', 'b')))
    load_checkpoint(loaded, path)
    assert loaded.dataset_palettes == dict(b=[[1, 2, 3]] * 3)


@pytest.mark.parametrize('num_classes', [(5, 3), (4, 4)])
def test_the_same_datasets_in_another_order_predict_exactly_as_before(tmp_path, num_classes):
    model = _trained(num_classes)
    path = _saved(model, tmp_path / 'ab.pth')
    reordered = MODELS.build(small_cdcl_cfg(num_classes[::-1], ('b', 'a')))
    load_checkpoint(reordered, path)
    for dataset in ('a', 'b'):
        torch.testing.assert_close(
            _logits(reordered, dataset, X), _logits(model, dataset, X), rtol=0, atol=0
        )


def test_other_datasets_are_refused_naming_both_lists(tmp_path):
    path = _saved(_trained(), tmp_path / 'ab.pth')
    other = MODELS.build(small_cdcl_cfg((5, 3), ('a', 'c')))
    with pytest.raises(
        ValueError,
        match=r"the checkpoint's datasets \['a', 'b'\] are not the "
        r"model's \['a', 'c'\]: set model.branch_map",
    ):
        load_checkpoint(other, path)


def test_branch_map_starts_a_new_dataset_from_a_named_branch(tmp_path):
    model = _trained((5, 3))
    path = _saved(model, tmp_path / 'ab.pth')
    # 'c' has b's classes: it starts as b's branch, classifier included.
    new = MODELS.build(small_cdcl_cfg((5, 3), ('a', 'c'), branch_map=dict(c='b')))
    load_checkpoint(new, path)
    torch.testing.assert_close(_logits(new, 'c', X), _logits(model, 'b', X), rtol=0, atol=0)
    torch.testing.assert_close(_logits(new, 'a', X), _logits(model, 'a', X), rtol=0, atol=0)
    # 'c' has 7 classes: its DSBN branches are b's, its classifiers start fresh, logged once.
    fresh = MODELS.build(small_cdcl_cfg((7, 5), ('c', 'a'), branch_map=dict(c='b')))
    classifier = copy.deepcopy(fresh.decode_head.conv_seg[0].state_dict())
    with logged() as log:
        load_checkpoint(fresh, path)
    notes = [line for line in log if line.startswith('CDCL checkpoint')]
    assert notes == [
        "CDCL checkpoint: dataset 'c' starts from the checkpoint's 'b' branches; "
        "decode_head.conv_seg of dataset 'c' starts fresh (branch 'b' of the "
        'checkpoint has (3, 32, 1, 1), the model (7, 32, 1, 1)); '
        "auxiliary_head.conv_seg of dataset 'c' starts fresh (branch 'b' of the "
        'checkpoint has (3, 16, 1, 1), the model (7, 16, 1, 1))'
    ]
    torch.testing.assert_close(fresh.decode_head.conv_seg[0].state_dict(), classifier)
    torch.testing.assert_close(
        fresh.backbone.stem[1].bns[0].running_var,
        model.backbone.stem[1].bns[1].running_var,
        rtol=0,
        atol=0,
    )
    torch.testing.assert_close(_logits(fresh, 'a', X), _logits(model, 'a', X), rtol=0, atol=0)


def test_branch_map_loads_a_subset_and_load_cdcl_checkpoint_takes_it(tmp_path):
    model = _trained()
    path = _saved(model, tmp_path / 'ab.pth')
    one = MODELS.build(small_cdcl_cfg((3,), ('b',)))
    with pytest.raises(ValueError, match=r"datasets \['a', 'b'\] are not the model's \['b'\]"):
        load_checkpoint(one, path)
    with logged() as log:
        load_cdcl_checkpoint(one, path, branch_map=dict(b='b'))
    assert "CDCL checkpoint: the checkpoint's branches of ['a'] are not loaded" in log
    assert one.branch_map is None  # for that load only
    torch.testing.assert_close(_logits(one, 'b', X), _logits(model, 'b', X), rtol=0, atol=0)
    with pytest.raises(
        ValueError,
        match=r"dataset 'c' is not in the checkpoint, whose datasets "
        r"are \['a', 'b'\], and model.branch_map=\{'c': 'x'\} "
        r'names none of them',
    ):
        load_cdcl_checkpoint(
            MODELS.build(small_cdcl_cfg((5, 3), ('a', 'c'))), path, branch_map=dict(c='x')
        )
    with pytest.raises(
        ValueError,
        match=r"branch_map names \['x'\], not datasets of the model "
        r"\['a', 'c'\]",
    ):
        MODELS.build(small_cdcl_cfg((5, 3), ('a', 'c'), branch_map=dict(x='a')))


def test_a_checkpoint_that_states_nothing_loads_by_position_with_a_warning(tmp_path):
    model = _trained((4, 4))
    plain = {k: v for k, v in model.state_dict().items()}  # no metadata
    save_checkpoint(dict(state_dict=plain), str(tmp_path / 'old.pth'))
    reordered = MODELS.build(small_cdcl_cfg((4, 4), ('b', 'a')))
    with logged() as log:
        load_checkpoint(reordered, str(tmp_path / 'old.pth'))
    torch.testing.assert_close(_logits(reordered, 'b', X), _logits(model, 'a', X), rtol=0, atol=0)
    assert [line for line in log if line.startswith('CDCL')] == [
        'CDCL checkpoint: it does not state its datasets (written before checkpoints did): its '
        "branches load by position as the datasets ['b', 'a'], right only if it was trained "
        'with model.dataset_names in that order. Loaders that read its meta '
        '(load_cdcl_checkpoint, init_cdcl_model, a config with CheckpointDatasetsHook) load it '
        'by name (docs/usage.md#loading-a-checkpoint)'
    ]
    # One dataset, one branch: nothing to confuse.
    one = _trained((4,), ('a',))
    save_checkpoint(
        dict(state_dict={k: v for k, v in one.state_dict().items()}), str(tmp_path / 'one.pth')
    )
    with logged() as log:
        load_checkpoint(MODELS.build(small_cdcl_cfg((4,), ('x',))), str(tmp_path / 'one.pth'))
    assert not [line for line in log if line.startswith('CDCL')]


def _wrapped(model):
    """The state dict of the model wrapped as DDP wraps it (keys 'module.'-prefixed; torch's
    DataParallel, which needs no process group, writes the same keys and metadata)."""
    return nn.DataParallel(model).state_dict()


def test_a_wrapped_models_checkpoint_loads_by_name_and_others_are_refused(tmp_path):
    """mmengine's loaders strip 'module.' from the keys, not from the metadata: the statement
    is the wrapper's entry. (Issue 30: it loaded by position, and into other datasets.)"""
    model = _trained((4, 4))
    state = _wrapped(model)
    assert list(state)[0] == 'module.backbone.stem.0.weight'
    assert stated(state) is state._metadata['module'] and stated(state)['dataset_names'] == [
        'a',
        'b',
    ]
    save_checkpoint(dict(state_dict=state), str(tmp_path / 'ddp.pth'))
    for load in (load_checkpoint, load_cdcl_checkpoint):
        reordered = MODELS.build(small_cdcl_cfg((4, 4), ('b', 'a')))
        load(reordered, str(tmp_path / 'ddp.pth'))
        for dataset in ('a', 'b'):
            torch.testing.assert_close(
                _logits(reordered, dataset, X), _logits(model, dataset, X), rtol=0, atol=0
            )
        with pytest.raises(
            ValueError, match=r"the checkpoint's datasets \['a', 'b'\] are not the model's"
        ):
            load(MODELS.build(small_cdcl_cfg((4, 4), ('a', 'c'))), str(tmp_path / 'ddp.pth'))


def test_the_statement_is_the_roots_or_the_one_wrappers():
    model = _trained((4, 4))
    assert stated(model.state_dict())['dataset_names'] == ['a', 'b']
    ema = ExponentialMovingAverage(model).state_dict()  # EMAHook's: 'module.' keys, 'steps'
    assert stated(ema) is ema._metadata['module']
    plain = OrderedDict(model.state_dict())
    assert stated(plain) is None  # no metadata
    two = nn.ModuleDict(dict(x=model, y=_trained((4, 4), ('c', 'd')))).state_dict()
    assert stated(two) is None  # two models: neither is the state dict's


def test_a_statement_that_contradicts_its_training_config_is_refused():
    state = _trained((4, 4)).state_dict()
    cfg = "model = dict(type='CDCLEncoderDecoder', dataset_names=['b', 'a'])\n"
    with pytest.raises(ValueError) as error:
        state_datasets_from_meta(dict(state_dict=state, meta=dict(cfg=cfg)), 'ab.pth')
    assert str(error.value) == (
        "ab.pth contradicts itself: its state dict states its branches are the datasets ['a', "
        "'b'], its training config (meta.cfg) has model.dataset_names=['b', 'a']: its statement "
        "or its meta was edited, or the meta is another model's; which branch is which dataset "
        'is unknown'
    )
    # add_dataset_branch's checkpoint keeps its source's meta.cfg; its meta.dataset_meta
    # names its datasets.
    added = dict(
        state_dict=state,
        meta=dict(cfg=cfg, dataset_meta=dict(dataset_names=['a', 'b']), added_branch={}),
    )
    assert state_datasets_from_meta(added) is added
    added['meta']['dataset_meta']['dataset_names'] = ['b', 'a']
    with pytest.raises(
        ValueError,
        match=re.escape(
            'the checkpoint contradicts itself: its state dict states its branches are the '
            "datasets ['a', 'b'], add_dataset_branch's meta.dataset_meta has "
            "dataset_names=['b', 'a']: its statement"
        ),
    ):
        state_datasets_from_meta(added)
    # Its meta states an old (DDP) checkpoint's datasets where the wrapped model's are.
    old = _wrapped(_trained((4, 4)))
    del old._metadata['module']['dataset_names'], old._metadata['module']['datasets']
    meta = dict(cfg=cfg, dataset_meta=dict(dataset_names=['a', 'b'], datasets={}))
    checkpoint = state_datasets_from_meta(dict(state_dict=old, meta=meta))
    assert stated(checkpoint['state_dict']) is checkpoint['state_dict']._metadata['module']
    assert stated(checkpoint['state_dict'])['dataset_names'] == ['b', 'a']


def test_its_meta_names_the_branches_of_such_a_checkpoint_for_init_cdcl_model(tmp_path):
    """A checkpoint written before its state dict stated its datasets: the Runner's
    meta.dataset_meta (the training MultiDataset's) does, for init_cdcl_model (tools/infer.py)."""
    model = _trained((4, 4), ('cityscapes', 'bdd100k'))
    plain = {k: v for k, v in model.state_dict().items()}
    meta = dict(
        dataset_meta=dict(
            dataset_names=['cityscapes', 'bdd100k'],
            datasets={
                n: dict(classes=tuple('pqrs'), palette=[[0, 0, 0]] * 4)
                for n in ('cityscapes', 'bdd100k')
            },
        )
    )
    save_checkpoint(dict(state_dict=plain, meta=meta), str(tmp_path / 'old.pth'))
    cfg = dict(model=small_cdcl_cfg((4, 4), ('bdd100k', 'cityscapes')))
    from mmengine.config import Config

    loaded = init_cdcl_model(Config(cfg), str(tmp_path / 'old.pth'), 'cityscapes')
    torch.testing.assert_close(
        _logits(loaded, 'cityscapes', X), _logits(model, 'cityscapes', X), rtol=0, atol=0
    )


def test_such_a_checkpoint_trained_from_a_dumped_config_keeps_its_branch_order(tmp_path):
    """mmengine's config dump sorts dict keys, so a run started from a work dir's config.py has
    its MultiDataset (meta.dataset_meta) in another order than its model's branches; the
    Runner's meta.cfg states the model's order, read as literals."""
    model = _trained((4, 4), ('cityscapes', 'bdd100k'))
    plain = {k: v for k, v in model.state_dict().items()}
    meta = dict(
        dataset_meta=dict(dataset_names=['bdd100k', 'cityscapes'], datasets={}),
        cfg="model = dict(\n    dataset_names=[\n        'cityscapes',\n        "
        "'bdd100k',\n    ],\n    type='CDCLEncoderDecoder')\n",
    )
    save_checkpoint(dict(state_dict=plain, meta=meta), str(tmp_path / 'old.pth'))
    assert trained_dataset_names(meta['cfg']) == ['cityscapes', 'bdd100k']
    assert trained_dataset_names('model = dict(dataset_names=names)') is None
    assert trained_dataset_names('__import__("os").system("x")') is None  # never executed
    for names in (('cityscapes', 'bdd100k'), ('bdd100k', 'cityscapes')):
        loaded = MODELS.build(small_cdcl_cfg((4, 4), names))
        load_cdcl_checkpoint(loaded, str(tmp_path / 'old.pth'))
        for name in names:
            torch.testing.assert_close(
                _logits(loaded, name, X), _logits(model, name, X), rtol=0, atol=0
            )


def test_a_cdcl_checkpoint_of_other_classes_is_refused_naming_branch_parameter_shapes(tmp_path):
    """A Cityscapes + BDD100K checkpoint into a Cityscapes + CamVid model, written before
    checkpoints stated their datasets (by position) or after (by name, same datasets)."""
    model = _trained((19, 19), ('cityscapes', 'bdd100k'))
    plain = {k: v for k, v in model.state_dict().items()}
    save_checkpoint(dict(state_dict=plain), str(tmp_path / 'old.pth'))
    camvid = MODELS.build(small_cdcl_cfg((19, 11), ('cityscapes', 'camvid')))
    with pytest.raises(
        ValueError,
        match=r"the checkpoint's classifiers do not fit the model's "
        r"datasets \['cityscapes', 'camvid'\]: a checkpoint of "
        r"other datasets or classes\? dataset 'camvid' "
        r'\(branch 1 of the checkpoint\) '
        r'decode_head.conv_seg.1.weight: checkpoint '
        r'\(19, 32, 1, 1\), model \(11, 32, 1, 1\); '
        r"dataset 'camvid' \(branch 1 of the checkpoint\) "
        r'auxiliary_head.conv_seg.1.weight: checkpoint '
        r'\(19, 16, 1, 1\), model \(11, 16, 1, 1\)$',
    ):
        load_checkpoint(camvid, str(tmp_path / 'old.pth'))
    other = MODELS.build(small_cdcl_cfg((19, 11), ('cityscapes', 'bdd100k')))
    with pytest.raises(
        ValueError,
        match=r"dataset 'bdd100k' \(branch 'bdd100k' of the "
        r'checkpoint\) decode_head.conv_seg.1.weight: '
        r'checkpoint \(19, 32, 1, 1\), model \(11, 32, 1, 1\)',
    ):
        load_checkpoint(other, _saved(model, tmp_path / 'new.pth'))


def test_a_stock_checkpoints_classifier_of_other_classes_starts_fresh_logged_once(tmp_path):
    stock_cfg = load_config('mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py').model
    stock_cfg.pretrained = None
    save_checkpoint(
        dict(state_dict=MODELS.build(stock_cfg).state_dict()), str(tmp_path / 'stock.pth')
    )
    cfg = copy.deepcopy(stock_cfg)
    cfg.update(
        type='CDCLEncoderDecoder', dataset_names=['cityscapes', 'camvid'], num_classes=[19, 11]
    )
    model = MODELS.build(cfg)
    with logged() as log:
        load_checkpoint(model, str(tmp_path / 'stock.pth'))
    line = (
        'CDCL checkpoint: the classifier fits no branch of decode_head.conv_seg of dataset '
        "'camvid' (checkpoint (19, 128, 1, 1), model (11, 128, 1, 1)), "
        "auxiliary_head.conv_seg of dataset 'camvid' (checkpoint (19, 64, 1, 1), model "
        '(11, 64, 1, 1)): they start fresh'
    )
    assert [m for m in log if m.startswith('CDCL')] == [line]
