"""One output label space: each dataset's classes mapped to target classes, checked."""

import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from mmseg_cdcl.models.utils import LabelSpace

TARGET = ('vehicle', 'ground', 'nature')
A = ('car', 'truck', 'road', 'tree')
B = ('road', 'vegetation', 'bus')


def _space(mapping=None, **kwargs):
    return LabelSpace(
        TARGET,
        mapping
        if mapping is not None
        else dict(
            a=dict(car='vehicle', truck='vehicle', road='ground', tree='nature'),
            b=['ground', 'nature', None],
        ),
        dataset_names=['a', 'b'],
        num_classes=[4, 3],
        dataset_classes=dict(a=A, b=B),
        **kwargs,
    )


def test_probabilities_of_classes_mapped_to_one_target_are_summed():
    space = _space()
    logits = torch.randn(2, 4, 3, 5)
    probs = logits.softmax(1)
    target = space.probabilities(logits, 0)
    torch.testing.assert_close(target[:, 0], probs[:, 0] + probs[:, 1])  # car + truck
    torch.testing.assert_close(target[:, 1], probs[:, 2])
    torch.testing.assert_close(target.sum(1), torch.ones(2, 3, 5))
    # b's 'bus' is mapped to None: its probability goes nowhere.
    logits_b = torch.randn(3, 2, 2)
    torch.testing.assert_close(space.probabilities(logits_b, 1).sum(0), 1 - logits_b.softmax(0)[2])


def test_labels_in_target_ids():
    space = _space()
    label = torch.tensor([[0, 1, 2, 3, 255]])
    assert space.labels(label, 0).tolist() == [[0, 0, 1, 2, 255]]
    assert space.labels(torch.tensor([[0, 1, 2, 255]]), 1).tolist() == [[1, 2, 255, 255]]


def test_identity_for_a_dataset_with_the_target_classes():
    space = LabelSpace(
        TARGET,
        dict(b=['ground', 'nature', 'vehicle']),
        dataset_names=['a', 'b'],
        num_classes=[3, 3],
        dataset_classes=dict(a=TARGET, b=B),
    )
    assert space.tables == [[0, 1, 2], [1, 2, 0]]


@pytest.mark.parametrize(
    'mapping, kwargs, message',
    [
        (
            dict(a=['vehicle'] * 4, b=['ground'] * 2),
            {},
            r"label_space.mapping.b has 2 entries but dataset 'b' has 3 classes",
        ),
        (
            dict(a=dict(car='vehicle', plane='vehicle'), b=[None] * 3),
            {},
            r"label_space.mapping.a names \['plane'\], not classes of dataset 'a'",
        ),
        (
            dict(a=['vehicle', 'sky', 'ground', 'water'], b=[None] * 3),
            {},
            r"label_space.mapping.a maps to \['sky', 'water'\], which are not target classes",
        ),
        (
            dict(a=[None] * 4, b=[None] * 3, kitti=[]),
            {},
            r"label_space.mapping names unknown datasets \['kitti'\]; the model's datasets are "
            r"\['a', 'b'\]",
        ),
        (
            dict(b=[None] * 3),
            {},
            r'label_space.mapping.a is missing: map the 4 classes of '
            r"dataset 'a' to the target classes",
        ),
        (
            dict(a=[None] * 4, b=[None] * 3),
            dict(palette=[[0, 0, 0]]),
            r'label_space.palette has 1 colours for 3 classes',
        ),
        (
            dict(a=[None] * 4, b=[None] * 3),
            dict(palette=[[0, 0, 0], [0, 300, 0], [1, 2, 3]]),
            r"label_space.palette: the colour of class 'ground' is \[0, 300, 0\]; expected "
            r'\[r, g, b\], three integers in 0..255',
        ),
    ],
)
def test_mapping_errors_name_what_is_wrong(mapping, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _space(mapping, **kwargs)


def test_targets_are_checked_at_build_even_where_class_names_come_later():
    """A model learns its datasets' class names from its checkpoint; the targets of a mapping
    by class name are known at build, and checked there."""
    with pytest.raises(
        ValueError,
        match=r"label_space.mapping.a maps to \['street'\], which are not target classes",
    ):
        LabelSpace(
            TARGET,
            dict(a=dict(car='vehicle', road='street'), b=[None] * 3),
            dataset_names=['a', 'b'],
            num_classes=[4, 3],
            defer_class_names=True,
        )


def test_a_dict_mapping_needs_the_dataset_class_names():
    with pytest.raises(
        ValueError,
        match=r'label_space.mapping.a maps class names, but the class '
        r"names of dataset 'a' are not known: give the mapping "
        r'as a list of 4 target names',
    ):
        LabelSpace(
            TARGET,
            dict(a=dict(car='vehicle'), b=[None] * 3),
            dataset_names=['a', 'b'],
            num_classes=[4, 3],
        )


def test_the_shipped_cityscapes_to_camvid_label_space():
    cfg = Config.fromfile(f'{REPO}/configs/_base_/label_spaces/cityscapes_to_camvid.py')
    space = LabelSpace(
        dataset_names=['cityscapes', 'bdd100k'], num_classes=[19, 19], **cfg.label_space
    )
    classes = space.classes
    assert len(classes) == 11
    # wall -> building, truck and bus -> car, train ignored (CamVid has no train class)
    assert [space.tables[0][i] for i in (3, 14, 15, 16)] == [
        classes.index('building'),
        classes.index('car'),
        classes.index('car'),
        255,
    ]
    assert space.tables[0] == space.tables[1]


def _model_with_names_mapping(**label_space):
    from mmseg.registry import MODELS

    from conftest import small_cdcl_cfg

    return MODELS.build(
        small_cdcl_cfg(
            (4, 3),
            ('a', 'b'),
            label_space=dict(
                classes=TARGET,
                mapping=dict(
                    a=dict(car='vehicle', truck='vehicle', road='ground', tree='nature'),
                    b=['ground', 'nature', None],
                ),
                **label_space,
            ),
        )
    )


def test_class_names_of_a_mapping_come_when_the_model_learns_them(tmp_path):
    """MODELS.build (tools/test.py, mmseg.apis.init_model) takes a label space by class names;
    the classes come from the checkpoint (its state dict states them) or dataset_meta."""
    from mmengine.runner import load_checkpoint, save_checkpoint

    model = _model_with_names_mapping()
    with pytest.raises(
        ValueError,
        match=r'label_space.mapping.a maps class names, but the class '
        r"names of dataset 'a' are not known: the checkpoint "
        r'does not state them; give '
        r'label_space.dataset_classes.a',
    ):
        model.label_space.probabilities(torch.randn(1, 4, 2, 2), 0)
    model.dataset_meta = dict(datasets=dict(a=dict(classes=A), b=dict(classes=B)))
    assert model.label_space.table(0) == [0, 0, 1, 2]
    save_checkpoint(dict(state_dict=model.state_dict()), str(tmp_path / 'ab.pth'))
    loaded = _model_with_names_mapping()
    load_checkpoint(loaded, str(tmp_path / 'ab.pth'))
    assert loaded.dataset_classes == dict(a=A, b=B)
    assert loaded.label_space.table(0) == [0, 0, 1, 2]
    with pytest.raises(
        ValueError,
        match=r"label_space.mapping.a names \['truck'\], not classes "
        r"of dataset 'a' \(\['car', 'lorry', 'road', 'tree'\]\)",
    ):
        _model_with_names_mapping().set_dataset_classes(dict(a=('car', 'lorry', 'road', 'tree')))
    with pytest.raises(
        ValueError,
        match=r"dataset 'a' has classes \['x', 'y'\] here but the "
        r'model has 4 classes',
    ):
        _model_with_names_mapping().set_dataset_classes(dict(a=('x', 'y')))


def test_dataset_classes_by_registered_dataset_type():
    space = LabelSpace(
        ('flat', 'other'),
        dict(c=dict(road='flat', sidewalk='flat')),
        dataset_names=['c'],
        num_classes=[19],
        dataset_classes=dict(c='CityscapesDataset'),
    )
    assert space.table(0) == [0, 0] + [255] * 17
    with pytest.raises(
        ValueError,
        match=r"label_space.dataset_classes.c='Kitti': expected class "
        r'names or the type of a registered dataset',
    ):
        LabelSpace(
            ('flat',),
            dict(c=None),
            dataset_names=['c'],
            num_classes=[1],
            dataset_classes=dict(c='Kitti'),
        )


# ------------------------------------------------------------------ unions of target classes

UNIVERSAL = ('car', 'truck', 'road', 'tree', 'grass')


def _universal(b, **kwargs):
    return LabelSpace(
        UNIVERSAL,
        dict(a=list(UNIVERSAL), b=b),
        dataset_names=['a', 'b'],
        num_classes=[5, 3],
        dataset_classes=dict(a=UNIVERSAL, b=('vehicle', 'road', 'nature')),
        universal=True,
        **kwargs,
    )


def test_a_class_as_a_union_of_target_classes_serves_both_directions():
    space = _universal(dict(vehicle=['car', 'truck'], road='road', nature=['tree', 'grass']))
    assert space.unions[1] == [(0, 1), (2,), (3, 4)]
    m = space.matrix(1, torch.zeros(()))
    assert m.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]
    logits = torch.randn(2, 5, 3, 4)
    p = logits.softmax(1)
    # the universal logits' own probabilities, and summed into b's classes
    torch.testing.assert_close(space.probabilities(logits, 1), p)
    torch.testing.assert_close(
        space.dataset_probabilities(logits, 1),
        torch.stack([p[:, 0] + p[:, 1], p[:, 2], p[:, 3] + p[:, 4]], 1),
    )
    assert space.table(0) == [0, 1, 2, 3, 4]  # a's labels map into the universal classes
    with pytest.raises(
        ValueError,
        match=r"label_space.mapping.b: class 'vehicle' is the union of the target classes "
        r"\['car', 'truck'\], so the labels of dataset 'b' cannot be put in the target classes",
    ):
        space.table(1)


def test_unions_need_a_universal_classifier():
    with pytest.raises(
        ValueError,
        match=r"label_space.mapping.b maps class 'vehicle' to several target classes \['car', "
        r"'truck'\]: a per-dataset head's probability of one class cannot be split among several "
        r'targets. Map it to one, or predict the target classes with one classifier '
        r'\(model.universal_head=True\)',
    ):
        LabelSpace(
            UNIVERSAL,
            dict(b=dict(vehicle=['car', 'truck'])),
            dataset_names=['a', 'b'],
            num_classes=[5, 3],
            dataset_classes=dict(a=UNIVERSAL, b=('vehicle', 'road', 'nature')),
        )


def test_a_universal_class_in_two_classes_of_a_dataset_is_refused():
    with pytest.raises(
        ValueError,
        match=r"label_space.mapping.b: target class 'truck' is in both class 'vehicle' and class "
        r"'road': with universal_head=True each of a dataset's classes is a union",
    ):
        _universal([['car', 'truck'], ['road', 'truck'], ['tree']])
    with pytest.raises(ValueError, match=r'label_space.mapping.b: 3 is not a target class name'):
        _universal([['car'], 3, None])


def test_the_shipped_universal_label_space_is_the_hand_written_mapping_reversed():
    """Each CamVid class is the union of the Cityscapes classes cityscapes_to_camvid.py maps to
    it: the two files cannot disagree."""
    hand = Config.fromfile(f'{REPO}/configs/_base_/label_spaces/cityscapes_to_camvid.py')
    cfg = Config.fromfile(f'{REPO}/configs/_base_/label_spaces/universal_cityscapes_camvid.py')
    space = LabelSpace(
        dataset_names=['cityscapes', 'camvid'],
        num_classes=[19, 11],
        universal=True,
        **cfg.label_space,
    )
    assert space.classes == tuple(hand.cityscapes_classes)
    assert space.table(0) == list(range(19))
    camvid = hand.label_space.classes
    for k, union in enumerate(space.union_ids(1)):
        assert {space.classes[u] for u in union} == {
            c for c, t in hand.cityscapes_to_camvid.items() if t == camvid[k]
        }
    assert [space.classes[u] for u in space.union_ids(1)[camvid.index('tree')]] == [
        'vegetation',
        'terrain',
    ]
    covered = {u for union in space.union_ids(1) for u in union}
    assert [space.classes[u] for u in range(19) if u not in covered] == ['train']  # the rest
