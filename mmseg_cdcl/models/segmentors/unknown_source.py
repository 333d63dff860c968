"""Inference of a CDCL model on images of unknown source: all branches combined, or every
route at once for evaluation (``UnknownSourceMetric``)."""
import copy
from typing import List, Optional

import torch
from mmseg.models.segmentors.base import BaseSegmentor
from torch import Tensor


def _postprocess(model, probabilities: Tensor, data_samples: Optional[list]) -> list:
    """MMSeg's results of probabilities already in the output label space."""
    return BaseSegmentor.postprocess_result(model, probabilities.clamp_min(1e-12).log(),
                                            copy.deepcopy(data_samples))


def branch_probabilities(model, inputs: Tensor, data_samples: Optional[list]) -> List[Tensor]:
    """Each branch's probabilities of the images, in one label space (the model's
    ``label_space``, else the datasets' classes where they are the same)."""
    classes = model.classes_per_dataset()
    if model.label_space is None and len(set(classes)) > 1:
        raise ValueError('combining the branches of datasets with other classes '
                         f'{dict(zip(model.dataset_names, classes))} needs one output label '
                         'space: set model.label_space')
    metas = [s.metainfo for s in data_samples] if data_samples is not None else [
        dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:],
             pad_shape=inputs.shape[2:], padding_size=[0] * 4)] * len(inputs)
    probabilities = []
    for d in range(len(model.dataset_names)):
        with model.dataset(d):
            logits = model.inference(inputs, metas)
        probabilities.append(logits.softmax(1) if model.label_space is None else
                             model.label_space.probabilities(logits, d))
    return probabilities


def ensemble(model, inputs: Tensor, data_samples: Optional[list], scores: Tensor,
             probabilities: Optional[List[Tensor]] = None) -> list:
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
        predictions = dict({f'branch_{n}': routes[n][i] for n in names}, auto=result,
                           ensemble=routes['ensemble'][i])
        if source in names:
            predictions['oracle'] = routes[source][i]
        for route, prediction in predictions.items():
            result.set_field(copy.deepcopy(prediction.pred_sem_seg), f'pred_{route}')
        result.set_metainfo(dict(dataset_name=names[d], dataset_scores={
            n: float(v) for n, v in zip(names, scores[i])}))
        results.append(result)
    return results
