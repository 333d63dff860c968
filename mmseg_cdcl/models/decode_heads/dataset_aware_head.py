"""Per-dataset label spaces of CDCL: a decode head with one classifier per dataset.

A dataset-aware head (a converted MMSeg head, see
:func:`mmseg_cdcl.models.utils.build_dataset_aware_head`, or a ``DAB<Head>`` of
:class:`DatasetAwareHeadMixin`) holds each dataset's classes and ignore index. The CDCL
segmentor runs it once per dataset of a batch (:func:`head_dataset` sets the head's
``num_classes`` and ``ignore_index``), so losses that need more than the logits (boundaries, SE
losses, cascades) are computed on that dataset's samples.
"""

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence, Union

from torch import nn

from ..layers import DSBN_CFG, DatasetBranches, dsbn_cfg


def per_dataset(value, num_datasets: int, key: str, owner: str) -> list:
    """``value`` (one for all, or one per dataset) for each dataset."""
    if value is None or isinstance(value, int):
        return [value] * num_datasets
    if len(value) != num_datasets:
        raise ValueError(
            f'{owner}: {key} has {len(value)} entries but num_classes has '
            f'{num_datasets} (one per dataset)'
        )
    return list(value)


def loss_modules(head: nn.Module) -> list:
    """The losses of a head (its ``loss_decode``), as a list."""
    losses = getattr(head, 'loss_decode', None)
    return list(losses) if isinstance(losses, nn.ModuleList) else [losses] * (losses is not None)


def is_dataset_aware(head: nn.Module) -> bool:
    return hasattr(head, 'dataset_num_classes')


@contextmanager
def head_dataset(
    head: nn.Module, dataset: int, ignore_index: Optional[int] = None
) -> Iterator[nn.Module]:
    """The head's ``num_classes``, ``out_channels``, ``ignore_index`` and its losses'
    ``class_weight`` are those of ``dataset`` inside the block (its losses, OHEM sampler and
    predictions read them). A head shared by the datasets (e.g. STDC's boundary head) takes only
    ``ignore_index``."""
    saved = head.num_classes, head.out_channels, head.ignore_index
    losses = loss_modules(head)
    saved_weights = [getattr(loss, 'class_weight', None) for loss in losses]
    if is_dataset_aware(head):
        head.num_classes = head.out_channels = head.dataset_num_classes[dataset]
        head.ignore_index = head.dataset_ignore_index[dataset]
        class_weights = getattr(head, 'dataset_class_weights', None)  # not the DAB heads'
        for loss, weight in zip(losses, class_weights[dataset] if class_weights else ()):
            loss.class_weight = weight
    elif ignore_index is not None:
        head.ignore_index = ignore_index
    try:
        yield head
    finally:
        head.num_classes, head.out_channels, head.ignore_index = saved
        for loss, weight in zip(losses, saved_weights):
            if hasattr(loss, 'class_weight'):
                loss.class_weight = weight


class DatasetAwareHeadMixin:
    """Turns an MMSeg decode head into a CDCL head: the head registered as ``DAB<Head>``.

    Its convs are Dataset-Aware Blocks (DSBN norms) and ``conv_seg`` holds one classifier per
    dataset, each with its own number of classes and ignore index (``DatasetBranches``).

    Args:
        num_classes (Sequence[int]): Classes of each dataset, e.g. ``[19, 19, 11]``.
        ignore_index (int | Sequence[int]): Ignored label, shared or per dataset. Defaults to 255.
        norm_cfg (dict): Norm of the head's convs. Defaults to DSBN; a plain BN config gives
            the "shared BN" ablation.
        **kwargs: Arguments of the MMSeg head.
    """

    def __init__(
        self,
        num_classes: Sequence[int],
        ignore_index: Union[int, Sequence[int]] = 255,
        norm_cfg: dict = DSBN_CFG,
        **kwargs,
    ):
        name = type(self).__name__
        if isinstance(num_classes, int) or not num_classes:
            raise ValueError(
                f'{name}: num_classes must list the classes of each dataset, '
                f'e.g. [19, 11], got {num_classes!r}'
            )
        num_datasets = len(num_classes)
        ignore_index = per_dataset(ignore_index, num_datasets, 'ignore_index', name)
        norm_cfg = dsbn_cfg(norm_cfg, num_datasets, f'{name} with num_classes={list(num_classes)}')
        super().__init__(
            num_classes=num_classes[0], ignore_index=ignore_index[0], norm_cfg=norm_cfg, **kwargs
        )
        self.num_datasets = num_datasets
        self.dataset_num_classes = tuple(num_classes)
        self.dataset_ignore_index = tuple(ignore_index)
        self.conv_seg = DatasetBranches(nn.Conv2d(self.channels, c, 1) for c in num_classes)
