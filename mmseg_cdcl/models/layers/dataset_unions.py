"""Each dataset's classes as unions of universal classes: what a universal head's logits mean
for the dataset whose labels train them."""

from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from .dataset_context import DatasetAwareModule

# The log-probability of a column no pixel has (an ignored class, an empty rest): finite, so that
# MMSeg's resize (0 × −inf is NaN) keeps it, and exp() of it is 0 in every float type.
NO_PROBABILITY = -1e4


def union_log_probabilities(logits: Tensor, unions: Sequence[Sequence[int]]) -> Tensor:
    """A dataset's class log-probabilities from universal logits: for each class ``c``,
    ``log P(c) = logsumexp_{u ∈ U(c)} log p(u)`` (Bevandić & Šegvić, arXiv 2108.11224), then one
    column more, the rest: the log-probability of the universal classes in no class of the
    dataset. The columns sum to probability one, so MMSeg's cross-entropy on them (its
    ``log_softmax`` adds nothing) is exactly ``−log Σ_{u∈U(c)} p(u)`` at a pixel of class ``c``.
    A class of no universal class (ignored) and an empty rest get :data:`NO_PROBABILITY`.

    Args:
        logits (Tensor): ``(N, U, H, W)`` universal logits.
        unions (Sequence[Sequence[int]]): For each of the dataset's ``C`` classes, the ids of
            its universal classes.

    Returns:
        Tensor: ``(N, C + 1, H, W)``.
    """
    log_p = logits.log_softmax(dim=1)
    covered = {u for members in unions for u in members}
    rest = [u for u in range(logits.shape[1]) if u not in covered]
    columns = []
    for members in [*unions, rest]:
        if members:
            columns.append(log_p[:, list(members)].logsumexp(dim=1))
        else:
            columns.append(log_p.new_full(log_p[:, 0].shape, NO_PROBABILITY))
    return torch.stack(columns, dim=1)


class DatasetUnions(DatasetAwareModule, nn.Module):
    """The unions of the dataset a universal head's forward is routed to
    (:func:`mmseg_cdcl.dataset_context`): its loss turns the universal logits into that
    dataset's classes (:func:`union_log_probabilities`). No parameters.

    Args:
        label_space (LabelSpace): The universal space (``universal=True``): its classes are
            the head's outputs, its mapping each dataset's classes as unions of them.
        num_datasets (int): The model's datasets.
    """

    def __init__(self, label_space, num_datasets: int):
        super().__init__()
        self.label_space = label_space
        self.num_datasets = num_datasets

    def unions(self, batch_size: int) -> List[Tuple[int, ...]]:
        """The universal ids of each class of the dataset of the current forward."""
        routing = self.routing(batch_size)
        if routing.single is None:
            raise RuntimeError(
                f'DatasetUnions got a batch of several datasets {list(routing.datasets)}: a '
                "universal head's loss is computed per dataset (the CDCL segmentor runs it once "
                'per dataset)'
            )
        return self.label_space.union_ids(routing.single)

    def forward(self, logits: Tensor) -> Tensor:
        """``(N, U, H, W)`` universal logits as ``(N, C + 1, H, W)`` class log-probabilities
        of the routed dataset (its classes, then the rest)."""
        return union_log_probabilities(logits, self.unions(len(logits)))

    def extra_repr(self) -> str:
        return (
            f'num_datasets={self.num_datasets}, universal_classes={len(self.label_space.classes)}'
        )
