"""The dataset branch of an image of unknown source, from DSBN's statistics.

Each DSBN branch holds the running statistics of its dataset's features, per layer: an
embedding of the dataset (Segu, Tonioni, Tombari, "Batch Normalization Embeddings for Deep
Domain Generalization", Pattern Recognition 2023). An image's own feature statistics at the
first DSBN layers are compared with each branch's, the features computed through that branch.
"""

import math
from typing import List, Sequence, Tuple

import torch
from mmseg.structures import SegDataSample
from torch import Tensor, nn

from ..layers import DSBN

DISTANCES = ('wasserstein', 'kl')


class _Enough(Exception):
    """Stops the probing forward once the compared layers have run."""


def _moments(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Per image and channel: the mean and variance over the other dimensions (centred by
    hand: torch's var kernel on the CPU took longer than the stem's convs)."""
    flat = x.flatten(2).float()
    mean = flat.mean(2)
    return mean, (flat - mean.unsqueeze(2)).square().mean(2)


def distance(mean: Tensor, var: Tensor, bn: nn.BatchNorm2d, kind: str, eps: float) -> Tensor:
    """Per image: the mean over channels of the distance between the image's Gaussian
    N(mean, var) and the branch's N(running_mean, running_var), in units of the branch's
    standard deviation (``'wasserstein'``: the squared 2-Wasserstein distance) or the KL
    divergence of the image's from the branch's (``'kl'``)."""
    mu, sigma2 = bn.running_mean.float(), bn.running_var.float() + eps
    if kind == 'wasserstein':
        d = ((mean - mu) ** 2 + (var.add(eps).sqrt() - sigma2.sqrt()) ** 2) / sigma2
    else:
        var = var + eps
        d = 0.5 * (var / sigma2 + (mean - mu) ** 2 / sigma2 - 1 + (sigma2 / var).log())
    return d.mean(1)


class BranchSelector:
    """Chooses, per image, the branch whose DSBN statistics the image's features match best.

    For each branch, the network runs through its first ``num_layers`` DSBN layers (in forward
    order) on that branch, recording the inputs' per-channel mean and variance per image, and
    ``distance`` compares them with the branch's running statistics; the mean over the layers
    is the image's distance to the dataset. Inference must be in eval mode (running statistics
    normalise): an image's choice does not depend on the rest of the batch.

    Args:
        num_layers (int): DSBN layers compared (the first ones in forward order). Defaults to
            1: the first layer's input comes before any dataset-specific layer, so one probe
            serves all branches; with more, each branch runs the layers before its last.
        distance (str): ``'wasserstein'`` or ``'kl'``. Defaults to ``'wasserstein'``.
        temperature (float): Scores are ``softmax(-distance / temperature)`` over branches.
    """

    def __init__(
        self, num_layers: int = 1, distance: str = 'wasserstein', temperature: float = 0.1
    ):
        if distance not in DISTANCES:
            raise ValueError(f'branch selection distance={distance!r}: expected one of {DISTANCES}')
        if num_layers < 1:
            raise ValueError(f'branch selection num_layers={num_layers}: expected >= 1')
        if not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
            # softmax(-distance / temperature) of a temperature <= 0 ranks the farthest branch
            # first (or gives NaN scores at 0)
            raise ValueError(
                f'branch selection temperature={temperature!r}: expected a positive finite number'
            )
        self.num_layers, self.distance, self.temperature = num_layers, distance, temperature

    def distances(self, model: nn.Module, inputs: Tensor) -> Tensor:
        """(images, branches): each image's distance to each dataset branch."""
        dsbns = [m for m in model.modules() if isinstance(m, DSBN)]
        if not dsbns:
            raise ValueError(
                'choosing a dataset branch from BatchNorm statistics needs DSBN '
                'layers, and the model has none'
            )
        branches = range(dsbns[0].num_datasets)
        if self.num_layers == 1:
            # The first DSBN's input comes before any dataset-specific layer: one probe serves
            # every branch.
            return self._probe(model, inputs, dsbns, 0, compare_with=branches)
        return torch.cat([self._probe(model, inputs, dsbns, d) for d in branches], 1)

    def _probe(
        self,
        model: nn.Module,
        inputs: Tensor,
        dsbns: List[DSBN],
        d: int,
        compare_with: Sequence[int] = None,
    ) -> Tensor:
        """(images, branches compared): the network through branch ``d`` until the compared
        layers have run, each image's distance to the branches ``compare_with`` (``d``)."""
        compare_with = [d] if compare_with is None else list(compare_with)
        seen: List[Tensor] = []

        def record(module, args):
            mean, var = _moments(args[0])
            seen.append(
                torch.stack(
                    [
                        distance(mean, var, module.bns[b], self.distance, module.bns[b].eps)
                        for b in compare_with
                    ],
                    1,
                )
            )
            if len(seen) == self.num_layers:
                raise _Enough

        handles = [m.register_forward_pre_hook(record) for m in dsbns]
        # Through the heads too: a model's DSBNs may all be there (SegFormer's backbone has
        # LayerNorms only). The samples route the forward to branch d with its classes.
        samples = [SegDataSample(metainfo=dict(dataset_idx=d)) for _ in range(len(inputs))]
        try:
            with torch.no_grad():
                model._forward(inputs, samples)
        except _Enough:
            pass
        finally:
            for handle in handles:
                handle.remove()
        if not seen:
            raise ValueError(
                'choosing a dataset branch from BatchNorm statistics: no DSBN layer '
                "ran in the model's forward"
            )
        return torch.stack(seen, 0).mean(0)  # fewer than num_layers if the model has fewer

    def __call__(self, model: nn.Module, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Each image's branch and its scores over the branches (summing to 1)."""
        distances = self.distances(model, inputs)
        return distances.argmin(1), (-distances / self.temperature).softmax(1)
