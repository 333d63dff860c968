"""Which label space a prediction is in: the one place every consumer of predictions asks.

A CDCL model predicts an image in the classes of the dataset whose branch predicts it, or in
one output label space (``model.label_space``: the datasets' classes mapped to target classes).
Class ids of two spaces are never comparable (CamVid's 3 is its road, Cityscapes' 3 its wall),
so each prediction states its space in its metainfo, ``prediction_space``::

    dict(name='cityscapes',            # a dataset's own classes, or 'label_space'
         classes=(...) or None,        # None: the dataset's, as its metainfo holds them
         palette=[[r, g, b], ...] or None,
         label_maps=dict(cityscapes=[target id or 255 per class id], ...))  # label space only

The model states it (:func:`set_prediction_space`, from :func:`branch_space`); the IoU metric,
the visualizer, ``tools/infer.py``, ``init_cdcl_model`` and the ``dataset_meta`` that MMSeg's
own visualizer reads all resolve it here (:func:`resolve_space`, :func:`labels_in_space`),
with the evaluated datasets' metainfo for what the prediction leaves to it. A prediction that
states no space (a stock MMSeg model's) is in its dataset's classes.
"""

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

PRED_SPACE = 'prediction_space'  # the metainfo key
LABEL_SPACE = 'label_space'  # the name of a model's output label space
IGNORE = 255


def branch_space(model, dataset: int, in_label_space: bool) -> dict:
    """The space of what dataset ``dataset``'s branch of the CDCL segmentor ``model``
    predicts: its label space's (``in_label_space``), else the dataset's own classes."""
    if in_label_space:
        return label_space_of(model)
    name = model.dataset_names[dataset]
    classes = model.dataset_classes.get(name)
    palette = getattr(model, 'dataset_palettes', {}).get(name)
    return dict(name=name, classes=None if classes is None else tuple(classes), palette=palette)


def label_space_of(model) -> dict:
    """The space of the model's ``label_space``, with the map of each dataset's labels into it
    (the datasets whose class names it knows, where the mapping is by name)."""
    space = model.label_space
    maps, unmapped = {}, {}
    for d, name in enumerate(model.dataset_names):
        try:
            maps[name] = list(space.table(d))
        except ValueError as e:  # names not known yet; a class that is a union (universal)
            unmapped[name] = str(e)
    stated = dict(
        name=LABEL_SPACE,
        classes=tuple(space.classes),
        palette=[list(c) for c in space.palette],
        label_maps=maps,
    )
    if unmapped:
        stated['unmapped'] = unmapped  # why those datasets' labels cannot be put there
    return stated


def predicts_in_label_space(model) -> bool:
    """Whether the CDCL segmentor ``model`` predicts in its label space: it has one, and its
    ``test_cfg.output_space`` is not ``'dataset'`` (each image in its dataset's classes)."""
    if model.label_space is None:
        return False
    return (model.test_cfg or {}).get('output_space', LABEL_SPACE) == LABEL_SPACE


def check_output_space(test_cfg: Optional[dict], label_space: Optional[dict]) -> None:
    """``test_cfg.output_space``: ``'label_space'`` (the default with a label space) or
    ``'dataset'``.

    Raises:
        ValueError: another value, or ``'label_space'`` without ``model.label_space``.
    """
    value = (test_cfg or {}).get('output_space')
    if value is None:
        return
    if value not in (LABEL_SPACE, 'dataset'):
        raise ValueError(
            f"test_cfg.output_space={value!r}: expected 'label_space' (every prediction in "
            "model.label_space's classes) or 'dataset' (an image of a known dataset in its "
            "dataset's classes)"
        )
    if value == LABEL_SPACE and label_space is None:
        raise ValueError("test_cfg.output_space='label_space' but the model has no label_space")


def model_dataset_meta(model, meta: Optional[dict]) -> Optional[dict]:
    """The ``dataset_meta`` of the CDCL segmentor ``model`` given ``meta`` (``init_model`` gives
    the checkpoint's, a ``MultiDataset``'s metainfo; ``MMSegInferencer`` its ``classes`` and
    ``palette``): ``classes`` and ``palette`` become those of the space in which the model
    predicts images given without their dataset (``model.default_dataset``), what MMSeg's
    ``show_result_pyplot`` and ``MMSegInferencer`` draw with. Where no one space holds them
    (``'auto'`` among datasets of other classes, no label space) they are :class:`Unresolved`.
    No other key is added."""
    if meta is None:
        return None
    space = _default_space(model)
    if space is None:
        return meta
    meta = dict(meta)
    try:
        resolved = resolve_space({PRED_SPACE: space}, meta)
    except ValueError as e:
        meta['classes'] = meta['palette'] = Unresolved(str(e))
        return meta
    meta.update(space_meta(resolved))
    return meta


def _default_space(model) -> Optional[dict]:
    """The space of every prediction of an image given without its dataset; None where there
    is no such image (no ``default_dataset``: images come with their dataset)."""
    default = model.default_dataset
    if default is None:
        return label_space_of(model) if predicts_in_label_space(model) else None
    if isinstance(default, int):
        return branch_space(model, default, predicts_in_label_space(model))
    if model.label_space is not None and (default == 'ensemble' or predicts_in_label_space(model)):
        return label_space_of(model)
    names = model.dataset_names
    classes = [model.dataset_classes.get(n) for n in names]
    counts = model.classes_per_dataset()
    if len(set(counts)) == 1 and (None in classes or len(set(map(tuple, classes))) == 1):
        return branch_space(model, 0, False)  # the datasets' classes are one set
    return dict(
        name=None,
        unresolved=(
            f'model.default_dataset={default!r} predicts each image in the classes of the branch '
            f'it chooses, and the datasets have other classes '
            f'{dict(zip(names, counts))}: no one list of classes and colours draws every '
            "prediction. Draw each with mmseg_cdcl's CDCLSegLocalVisualizer (the config's "
            "visualizer) or tools/infer.py, which use each prediction's own space, or set "
            'model.label_space (one output label space)'
        ),
    )


def set_prediction_space(sample, space: dict) -> None:
    """State in a data sample's metainfo the space of its ``pred_sem_seg`` and
    ``seg_logits``."""
    sample.set_metainfo({PRED_SPACE: space})


def stated_space(sample) -> Optional[dict]:
    """The space a prediction states, None for a stock model's."""
    meta = sample.metainfo if hasattr(sample, 'metainfo') else sample
    return meta.get(PRED_SPACE)


def source_dataset(sample) -> Optional[str]:
    """The dataset an evaluated image comes from (its labels' classes): ``source_dataset``
    where the model was not told it, else ``dataset_name`` (``MultiDataset`` sets it)."""
    meta = sample.metainfo if hasattr(sample, 'metainfo') else sample
    return meta.get('source_dataset') or meta.get('dataset_name')


def resolve_space(sample, dataset_meta: Optional[dict] = None) -> dict:
    """``dict(name, classes, palette)`` of a prediction's space, completed from
    ``dataset_meta`` (a ``MultiDataset``'s metainfo: ``datasets[name]``; or one dataset's).

    Raises:
        ValueError: neither the prediction nor ``dataset_meta`` gives its classes.
    """
    space = stated_space(sample)
    if space is not None and space.get('unresolved'):
        raise ValueError(space['unresolved'])
    datasets = (dataset_meta or {}).get('datasets') or {}
    if space is None:  # a stock prediction: in its dataset's classes
        name = source_dataset(sample)
        meta = datasets.get(name) or dataset_meta or {}
        space = dict(name=name, classes=None, palette=None)
    else:
        meta = datasets.get(space['name'])
        if meta is None and space['name'] != LABEL_SPACE and dataset_meta is not None:
            # one dataset's metainfo (init_model's dataset_meta): it is this space's if its
            # classes are the ones the prediction states, or the prediction states none
            meta = dataset_meta if _same(space.get('classes'), dataset_meta.get('classes')) else {}
        meta = meta or {}
    classes = _known(space.get('classes')) or _known(meta.get('classes'))
    if classes is None:
        raise ValueError(
            f"the prediction is in the classes of dataset '{space['name']}', which are not "
            'known here: give its metainfo (dataset_meta.datasets.'
            f'{space["name"]}.classes) or load a checkpoint that states them'
        )
    palette = _known(space.get('palette')) or _known(meta.get('palette'))
    if palette is None or len(palette) != len(classes):
        palette = default_palette(len(classes))
    return dict(name=space['name'], classes=tuple(classes), palette=[list(c) for c in palette])


def labels_in_space(
    sample, label: Tensor, space: dict, dataset_meta: Optional[dict] = None
) -> Optional[Tensor]:
    """The image's labels (in its source dataset's classes) in the prediction's space: as they
    are where the space is the dataset's or has its classes (labels written in a universal
    space's classes, for a dataset named as the model's), mapped by the label space's map of
    the dataset otherwise (a map of as many classes as the labels have); None where they cannot
    be put there."""
    source = source_dataset(sample)
    stated = stated_space(sample) or {}
    if source is not None and source == space['name']:
        return label
    datasets = (dataset_meta or {}).get('datasets') or {}
    own = (datasets.get(source) or {}).get('classes')
    if own is None and not datasets and source is None:
        own = (dataset_meta or {}).get('classes')  # one dataset's metainfo
    if _same(own, space['classes']):
        return label
    table = (stated.get('label_maps') or {}).get(source)
    if table is not None and (_known(own) is None or len(own) == len(table)):
        lut = torch.full((256,), IGNORE, dtype=torch.long, device=label.device)
        lut[: len(table)] = torch.tensor(table, device=label.device)
        return lut[label.long().clamp(0, 255)].to(label.dtype)
    return None


def uncomparable(sample, space: dict, dataset_meta: Optional[dict]) -> str:
    """Why the labels of ``sample`` cannot be compared with its prediction."""
    source = source_dataset(sample)
    datasets = (dataset_meta or {}).get('datasets') or {}
    own = (datasets.get(source) or {}).get('classes')
    meta = sample.metainfo if hasattr(sample, 'metainfo') else sample
    why = ((stated_space(sample) or {}).get('unmapped') or {}).get(source)
    return (
        f'the prediction of {meta.get("img_path", "an image")} is in '
        f"{describe(space)}, its labels in dataset '{source}'s classes "
        f'{list(own) if own is not None else "(unknown)"}, and '
        + (
            f"{why}. Score '{source}' in its own classes (model.test_cfg.output_space="
            "'dataset'), or give labels in the label space's classes"
            if why is not None
            else f"the model states no map of '{source}' into that space: give "
            f'model.label_space.mapping.{source}'
        )
    )


def describe(space: dict) -> str:
    """How logs name a space."""
    classes = list(space['classes'])
    if space['name'] == LABEL_SPACE:
        return f'the label space ({len(classes)} classes: {", ".join(classes)})'
    return f"dataset '{space['name']}'s classes ({len(classes)})"


def default_palette(num_classes: int) -> list:
    """Colours for classes that come without (as ``LabelSpace`` and the export choose them)."""
    return [list(map(int, c)) for c in np.random.default_rng(0).integers(0, 256, (num_classes, 3))]


def _same(a: Optional[Sequence[str]], b: Optional[Sequence[str]]) -> bool:
    a, b = _known(a), _known(b)
    return a is not None and b is not None and tuple(a) == tuple(b)


def _known(value):
    """``value``, or None for what is not known (None, :class:`Unresolved`)."""
    return None if isinstance(value, Unresolved) else value


def space_meta(space: dict) -> Dict[str, object]:
    """``dict(classes, palette)`` of a resolved space: what MMSeg's visualizer draws with."""
    return dict(classes=tuple(space['classes']), palette=[list(c) for c in space['palette']])


class Unresolved:
    """Classes or palette where no single space holds the predictions (``'auto'`` among
    datasets of other classes, without a label space): any use raises, naming why, so that
    MMSeg's own visualizer cannot draw them in one dataset's classes."""

    def __init__(self, reason: str):
        self.reason = reason

    def _refuse(self, *args):
        raise ValueError(self.reason)

    __len__ = __iter__ = __getitem__ = __bool__ = __contains__ = _refuse

    def __repr__(self) -> str:
        return f'Unresolved({self.reason!r})'

    def __reduce__(self):
        return (Unresolved, (self.reason,))

    def __deepcopy__(self, memo):
        return self
