"""Which label space a prediction is in: stated by the model, resolved the same way by every
consumer, never two spaces' ids compared."""

import copy
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from conftest import small_cdcl_cfg
from mmseg_cdcl.structures import LABEL_SPACE, labels_in_space, resolve_space
from mmseg_cdcl.structures.prediction_space import Unresolved, model_dataset_meta

A, B = ('x', 'y', 'z'), ('t0', 't1')
META = dict(
    classes=A,
    palette=[[1, 1, 1], [2, 2, 2], [3, 3, 3]],
    dataset_names=['a', 'b'],
    datasets=dict(
        a=dict(classes=A, palette=[[1, 1, 1], [2, 2, 2], [3, 3, 3]]),
        b=dict(classes=B, palette=[[7, 7, 7], [8, 8, 8]]),
    ),
)
SPACE = dict(
    name=LABEL_SPACE,
    classes=B,
    palette=[[9, 9, 9], [10, 10, 10]],
    label_maps=dict(a=[0, 255, 1]),
)


def _sample(dataset, space=None, source=None):
    meta = dict(dataset_name=dataset)
    if space is not None:
        meta['prediction_space'] = space
    if source is not None:
        meta['source_dataset'] = source
    return SegDataSample(metainfo=meta)


def test_a_prediction_is_resolved_in_the_space_it_states():
    # a dataset's own space: classes and colours from that dataset's metainfo
    assert resolve_space(_sample('b', dict(name='b')), META) == dict(
        name='b', classes=B, palette=[[7, 7, 7], [8, 8, 8]]
    )
    # the label space: its own classes and colours, whatever the dataset
    assert resolve_space(_sample('a', SPACE), META) == dict(
        name=LABEL_SPACE, classes=B, palette=[[9, 9, 9], [10, 10, 10]]
    )
    # a stock prediction (no statement): its dataset's classes
    assert resolve_space(_sample('b'), META)['classes'] == B
    # the classes known nowhere: refused, naming where they would come from
    with pytest.raises(
        ValueError,
        match=r"classes of dataset 'c', which are not known here: give its metainfo "
        r'\(dataset_meta.datasets.c.classes\)',
    ):
        resolve_space(_sample('c', dict(name='c')), META)


def test_one_datasets_metainfo_is_used_only_for_its_own_classes():
    """init_model's dataset_meta (one dataset's) describes a prediction only if the classes
    it states are the metainfo's: never Cityscapes' names on CamVid's ids."""
    one = dict(classes=A, palette=META['palette'])
    assert resolve_space(_sample(None, dict(name='a', classes=A)), one)['palette'] == one['palette']
    other = resolve_space(_sample(None, dict(name='b', classes=B)), one)
    assert other['classes'] == B and len(other['palette']) == 2  # not A's colours


def test_labels_go_into_the_space_of_the_prediction_or_nowhere():
    label = torch.tensor([[0, 1, 2, 255]])
    space = resolve_space(_sample('a', SPACE), META)
    assert labels_in_space(_sample('a', SPACE), label, space, META).tolist() == [[0, 255, 1, 255]]
    # b's classes are the label space's: as they are
    assert labels_in_space(_sample('b', SPACE), label, space, META) is label
    # a source without a map, whose classes are others: cannot be put there
    other = dict(META, datasets=dict(META['datasets'], c=dict(classes=('p', 'q'))))
    assert labels_in_space(_sample('x', SPACE, source='c'), label, space, other) is None
    # a dataset's own space
    own = resolve_space(_sample('a', dict(name='a')), META)
    assert labels_in_space(_sample('a', dict(name='a')), label, own, META) is label


def test_unresolved_classes_refuse_every_use_but_travel():
    reason = 'no one list of classes'
    unresolved = Unresolved(reason)
    for use in (len, list, bool, lambda u: u[0], lambda u: 'x' in u):
        with pytest.raises(ValueError, match=reason):
            use(unresolved)
    assert pickle.loads(pickle.dumps(unresolved)).reason == reason
    assert copy.deepcopy(unresolved) is unresolved


def _model(test_cfg=None, **kwargs):
    cfg = ConfigDict(small_cdcl_cfg(num_classes=(3, 2), **kwargs))
    cfg.test_cfg.update(test_cfg or {})
    return MODELS.build(cfg)


@pytest.mark.parametrize(
    'default,classes',
    [('a', A), ('b', B), (None, A)],
)
def test_dataset_meta_of_a_routed_model_is_its_datasets(default, classes):
    model = _model(default_dataset=default)
    model.dataset_meta = META
    assert tuple(model.dataset_meta['classes']) == classes
    assert set(model.dataset_meta) == set(META)  # no key added (MMSegInferencer passes them on)


def test_dataset_meta_of_auto_over_other_classes_refuses_to_draw():
    model = _model(default_dataset='auto')
    model.dataset_meta = META
    with pytest.raises(ValueError, match=r"default_dataset='auto' predicts each image in the"):
        len(model.dataset_meta['classes'])
    label_space = dict(
        classes=B, palette=[[9, 9, 9], [10, 10, 10]], mapping=dict(a=['t0', None, 't1'])
    )
    model = _model(default_dataset='auto', label_space=label_space)
    model.dataset_meta = META
    assert tuple(model.dataset_meta['classes']) == B
    assert model.dataset_meta['palette'] == [[9, 9, 9], [10, 10, 10]]
    # each dataset's classes, from MMSegInferencer's one-dataset meta and the model's knowledge
    assert model_dataset_meta(model, None) is None


def test_each_prediction_states_its_space(monkeypatch):
    model = _model(default_dataset='b').eval()
    model.set_dataset_classes(dict(a=A, b=B), dict(b=[[7, 7, 7], [8, 8, 8]]))
    x = torch.rand(1, 3, 32, 32)
    [result] = model.predict(x)
    assert result.prediction_space == dict(name='b', classes=B, palette=[[7, 7, 7], [8, 8, 8]])
    assert int(result.pred_sem_seg.data.max()) < 2
    label_space = dict(classes=B, mapping=dict(a=['t0', None, 't1']))
    model = _model(default_dataset='a', label_space=label_space).eval()
    [result] = model.predict(x)
    space = result.prediction_space
    assert (space['name'], space['classes'], space['label_maps']) == (
        LABEL_SPACE,
        B,
        dict(a=[0, 255, 1], b=[0, 1]),
    )
    model.test_cfg['output_space'] = 'dataset'
    [result] = model.predict(x)
    assert result.prediction_space['name'] == 'a'
    np.testing.assert_array_equal(result.seg_logits.data.shape[0], 3)


def test_output_space_is_checked_at_build():
    with pytest.raises(ValueError, match=r"test_cfg.output_space='labels': expected 'label_space'"):
        _model(test_cfg=dict(output_space='labels'))
    with pytest.raises(ValueError, match="output_space='label_space' but the model has no label"):
        _model(test_cfg=dict(output_space='label_space'))


def test_labels_in_the_spaces_classes_are_taken_as_they_are_before_any_map():
    """A dataset named as one of the model's ('a', whose branch predicts it) whose labels are in
    the universal classes: the map of a's own classes (3, not the 2 here) must not touch them."""
    label = torch.tensor([[0, 1, 255]])
    universal = dict(META, datasets=dict(META['datasets'], a=dict(classes=B)))
    space = resolve_space(_sample('a', SPACE), universal)
    assert labels_in_space(_sample('a', SPACE), label, space, universal) is label
    # labels of another number of classes than the map's: never mapped by it
    other = dict(META, datasets=dict(META['datasets'], a=dict(classes=('p', 'q'))))
    assert labels_in_space(_sample('a', SPACE), label, space, other) is None
