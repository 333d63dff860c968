"""Inference of a CDCL model on images of unknown source: the branch their DSBN statistics
choose (``default_dataset='auto'``, :class:`BranchSelector`), all branches combined
(``'ensemble'``), or every route at once for evaluation (``UnknownSourceMetric``).

Choosing an image's branch, then predicting with it, runs the backbone twice, unless its
features do not depend on the branch (:class:`SharedFeatures`)."""

import copy
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence

import torch
from mmseg.models.segmentors.base import BaseSegmentor
from torch import Tensor

from ...structures.prediction_space import branch_space, label_space_of, set_prediction_space
from ..layers import DatasetAwareModule

# default_dataset of images of unknown source: the branch their DSBN statistics match best, or
# all branches' probabilities combined.
AUTO, ENSEMBLE = 'auto', 'ensemble'


def check_ensemble(
    dataset_names: Sequence[str],
    default_dataset,
    label_space: Optional[dict],
    test_cfg: Optional[dict],
    classes: Optional[Sequence[int]],
) -> None:
    """The ensemble adds the branches' probabilities class by class: their classes must be
    the same, or mapped into one label space.

    Raises:
        ValueError: the ensemble is asked for over datasets of other classes without a label
            space; names the key that asks for it.
    """
    if label_space is not None or classes is None or len(set(classes)) == 1:
        return
    if default_dataset == ENSEMBLE:
        key, instead = "default_dataset='ensemble'", "or use default_dataset='auto'"
    elif (test_cfg or {}).get('unknown_source', False):
        key, instead = 'test_cfg.unknown_source=True (its ensemble route)', ''
    else:
        return
    raise ValueError(
        f"{key} adds the branches' probabilities, but the datasets have other classes "
        f'{dict(zip(dataset_names, classes))}: set model.label_space (LabelSpace: one '
        f"output label space, each dataset's classes mapped to it) {instead}".rstrip()
    )


def _postprocess(model, probabilities: Tensor, data_samples: Optional[list]) -> list:
    """MMSeg's results of probabilities already in the output label space (the model's
    ``label_space``, else the classes all datasets have), each stating it."""
    results = BaseSegmentor.postprocess_result(
        model, probabilities.clamp_min(1e-12).log(), copy.deepcopy(data_samples)
    )
    space = (
        label_space_of(model) if model.label_space is not None else branch_space(model, 0, False)
    )
    for result in results:
        set_prediction_space(result, space)
    return results


def branch_probabilities(model, inputs: Tensor, data_samples: Optional[list]) -> List[Tensor]:
    """Each branch's probabilities of the images, in one label space (the model's
    ``label_space``, else the datasets' classes where they are the same)."""
    classes = model.classes_per_dataset()
    names = [model.dataset_classes.get(n) for n in model.dataset_names]
    if model.label_space is None and (
        len(set(classes)) > 1 or None not in names and len(set(map(tuple, names))) > 1
    ):
        raise ValueError(
            'combining the branches of datasets with other classes '
            f'{dict(zip(model.dataset_names, names if None not in names else classes))} '
            'needs one output label space: set model.label_space'
        )
    metas = (
        [s.metainfo for s in data_samples]
        if data_samples is not None
        else [
            dict(
                ori_shape=inputs.shape[2:],
                img_shape=inputs.shape[2:],
                pad_shape=inputs.shape[2:],
                padding_size=[0] * 4,
            )
        ]
        * len(inputs)
    )
    probabilities = []
    for d in range(len(model.dataset_names)):
        with model.dataset(d):
            logits = model.inference(inputs, metas)
        probabilities.append(
            logits.softmax(1)
            if model.label_space is None
            else model.label_space.probabilities(logits, d)
        )
    return probabilities


def ensemble(
    model,
    inputs: Tensor,
    data_samples: Optional[list],
    scores: Tensor,
    probabilities: Optional[List[Tensor]] = None,
) -> list:
    """Every branch's probabilities weighted by the image's scores (uniformly with
    ``test_cfg.ensemble_weights='uniform'``)."""
    if probabilities is None:
        probabilities = branch_probabilities(model, inputs, data_samples)
    if (model.test_cfg or {}).get('ensemble_weights') == 'uniform':
        scores = torch.full_like(scores, 1 / scores.shape[1])
    combined = sum(w.view(-1, 1, 1, 1).to(p) * p for w, p in zip(scores.T, probabilities))
    return _postprocess(model, combined, data_samples)


def predict_routes(model, inputs: Tensor, data_samples: list) -> list:
    """Every route of images whose source the model is not told: each branch
    (``pred_branch_<dataset>``), ``auto`` (``pred_sem_seg`` and ``pred_auto``), ``ensemble``
    and ``oracle`` (the branch of the image's dataset, where it is one of the model's).
    ``source_dataset`` keeps the dataset the image came from, ``dataset_name`` and
    ``dataset_scores`` are auto's choice."""
    names = model.dataset_names
    choice, scores = model.branch_selector(model, inputs)
    probabilities = branch_probabilities(model, inputs, data_samples)
    for sample in data_samples:
        sample.set_metainfo(dict(source_dataset=sample.metainfo.get('dataset_name')))
    routes = {name: _postprocess(model, p, data_samples) for name, p in zip(names, probabilities)}
    routes['ensemble'] = ensemble(model, inputs, data_samples, scores, probabilities)
    results = []
    for i, d in enumerate(choice.tolist()):
        result = copy.deepcopy(routes[names[d]][i])
        source = result.metainfo['source_dataset']
        predictions = dict(
            {f'branch_{n}': routes[n][i] for n in names},
            auto=result,
            ensemble=routes['ensemble'][i],
        )
        if source in names:
            predictions['oracle'] = routes[source][i]
        for route, prediction in predictions.items():
            result.set_field(copy.deepcopy(prediction.pred_sem_seg), f'pred_{route}')
        result.set_metainfo(
            dict(
                dataset_name=names[d],
                dataset_scores={n: float(v) for n, v in zip(names, scores[i])},
            )
        )
        results.append(result)
    return results


def _scored(result, names: Sequence[str], scores: Tensor) -> None:
    """State auto's choice and the branches' scores in a result's metainfo."""
    result.set_metainfo(
        dict(
            dataset_name=names[int(scores.argmax())],
            dataset_scores={name: float(v) for name, v in zip(names, scores)},
        )
    )


def predict_unknown(
    model, inputs: Tensor, data_samples: Optional[list], indices: list, unknown: List[int]
) -> list:
    """``predict`` of a batch with samples of unknown source (positions ``unknown``, whose
    ``indices`` are None): auto's branch or the ensemble for them, their datasets' branches for
    the others. A batch of them alone is passed on as the same tensor, whose features the
    branches may share."""
    results = [None] * len(inputs)
    subset = inputs if len(unknown) == len(inputs) else inputs[unknown]
    choice, scores = model.branch_selector(model, subset)
    if model.default_dataset == ENSEMBLE:
        samples = None if data_samples is None else [data_samples[i] for i in unknown]
        for i, result in zip(unknown, ensemble(model, subset, samples, scores)):
            results[i] = result
    else:
        for i, d in zip(unknown, choice.tolist()):
            indices[i] = d
    known = [i for i, d in enumerate(indices) if d is not None and results[i] is None]
    if known:
        samples = None if data_samples is None else [data_samples[i] for i in known]
        subset = inputs if len(known) == len(inputs) else inputs[known]
        routed = model.predict_routed(subset, samples, [indices[i] for i in known])
        for i, result in zip(known, routed):
            results[i] = result
    for k, i in enumerate(unknown):
        _scored(results[i], model.dataset_names, scores[k])
    return results


def predict_dataset_inputs(model, inputs: Tensor, data_samples: list) -> list:
    """``predict`` of images prepared by every dataset's test pipeline
    (``DatasetTestPipelines``, MMSeg's ``inference_model``): each with the inputs of the
    dataset whose branch predicts it. Auto chooses on the inputs given (the first dataset's
    pipeline's); ensemble combines the branches on them."""
    versions = []
    for sample in data_samples:
        own = sample.metainfo['pipeline_dataset']
        versions.append(dict(sample.metainfo['dataset_inputs'], **{own: None}))
        del sample.dataset_inputs  # the other datasets' images: not part of the result
    indices = model.dataset_indices(data_samples, len(inputs))
    if None in indices:
        choice, scores = model.branch_selector(model, inputs)
    results = []
    for i, d in enumerate(indices):
        if d is None and model.default_dataset == AUTO:
            d = int(choice[i])
        if d is None:  # ensemble
            result = ensemble(model, inputs[i : i + 1], data_samples[i : i + 1], scores[i : i + 1])
        else:
            version = versions[i][model.dataset_names[d]]
            part, sample = inputs[i : i + 1], data_samples[i]
            if version is not None:  # another dataset's pipeline made inputs[i]
                data = model.data_preprocessor(
                    dict(inputs=[version['inputs']], data_samples=[version['data_samples']])
                )
                part, sample = data['inputs'], data['data_samples'][0]
                sample.set_metainfo(dict(pipeline_dataset=model.dataset_names[d]))
            result = model.predict_routed(part, [sample], [d])
        if indices[i] is None:
            _scored(result[0], model.dataset_names, scores[i])
        results += result
    return results


class SharedFeatures:
    """The backbone's (and neck's) features of the tensor last seen, reused across branches
    while :meth:`sharing` holds them: when no dataset-aware module is in the backbone and neck
    (SegFormer: LayerNorms only), choosing an image's branch, then predicting with it, runs
    them once."""

    def __init__(self):
        self._held: Optional[list] = None  # [inputs, their version, features] while sharing

    def extract(self, inputs: Tensor, extract_feat):
        """``extract_feat(inputs)``, or the features held if ``inputs`` views the same data
        (slide inference's single window is a view of the whole image)."""
        held = self._held
        if held and _same_data(held[0], held[1], inputs):
            return held[2]
        feats = extract_feat(inputs)
        if held is not None:
            self._held = [inputs, inputs._version, feats]
        return feats

    @contextmanager
    def sharing(self, model) -> Iterator[None]:
        """Hold the features of ``model``'s forwards inside, where they do not depend on the
        branch."""
        parts = [model.backbone] + ([model.neck] if model.with_neck else [])
        if any(isinstance(m, DatasetAwareModule) for part in parts for m in part.modules()):
            yield
            return
        self._held = []
        try:
            yield
        finally:
            self._held = None


def _same_data(a: Tensor, version: int, b: Tensor) -> bool:
    """Whether ``b`` views exactly ``a``'s elements, unchanged since ``a`` was at ``version``
    (``a`` is held, so its memory is not another tensor's; a view shares its base's version
    counter, which counts in-place changes)."""
    return b._version == version and (
        a is b
        or a.data_ptr() == b.data_ptr()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
        and a.device == b.device
    )
