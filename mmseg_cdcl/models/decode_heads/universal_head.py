"""A decode head whose one classifier predicts the universal classes, trained by every
dataset's labels through its classes' unions.

:func:`~mmseg_cdcl.models.utils.convert_universal_head` makes a built head of a CDCL model
universal (its per-dataset classifiers become one); this module holds what the head does
differently: its outputs are the universal classes whatever dataset it is routed to, and its
loss first turns them into the routed dataset's classes, so that MMSeg's own loss modules
(the config's ``CrossEntropyLoss`` and its weights, ``avg_non_ignore``, an OHEM sampler,
``acc_seg``) apply unchanged.
"""

from contextlib import contextmanager
from typing import Dict, Iterator, List

import torch
from mmengine.structures import PixelData
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.structures import SegDataSample

from .dataset_aware_head import loss_modules

_CLASSES: Dict[type, type] = {}


class UniversalHeadMixin:
    """What a universal head changes in an MMSeg decode head.

    ``num_classes`` and ``out_channels`` are the universal classes' number for every dataset
    (the CDCL routing sets them per dataset; slide inference allocates its output with them).
    :meth:`loss_by_feat` resizes the logits to the labels, as MMSeg does, then gives MMSeg's
    loss the routed dataset's class log-probabilities
    (:func:`~mmseg_cdcl.models.layers.dataset_unions.union_log_probabilities`: one column per
    class, then the rest), so that a pixel of class ``c`` costs ``−log Σ_{u∈U_d(c)} p(u)``.
    A class mapped to no universal class is ignored (its pixels get the dataset's ignore index).
    """

    universal_classes: int

    @property
    def num_classes(self) -> int:
        return self.universal_classes

    @num_classes.setter
    def num_classes(self, value) -> None:
        pass  # set per dataset by the routing: the outputs stay the universal classes

    @property
    def out_channels(self) -> int:
        return self.universal_classes

    @out_channels.setter
    def out_channels(self, value) -> None:
        pass

    def loss_by_feat(self, seg_logits, batch_data_samples) -> dict:
        label = self._stack_batch_gt(batch_data_samples)
        seg_logits = resize(
            input=seg_logits,
            size=label.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners,
        )
        unions = self.dataset_unions.unions(len(seg_logits))
        log_probs = self.dataset_unions(seg_logits)
        ignored = [c for c, members in enumerate(unions) if not members]
        if ignored:
            batch_data_samples = _ignoring(batch_data_samples, ignored, self.ignore_index)
        with _rest_weighted(self, len(unions)):
            # MMSeg resizes again, to the size they have: an identity
            return super().loss_by_feat(log_probs, batch_data_samples)


def _ignoring(samples: List[SegDataSample], classes: List[int], ignore_index: int) -> list:
    """The samples with their labels of ``classes`` set to ``ignore_index`` (new samples:
    the batch's own are left as they are)."""
    out = []
    for sample in samples:
        label = sample.gt_sem_seg.data.clone()
        label[torch.isin(label, label.new_tensor(classes))] = ignore_index
        new = SegDataSample(metainfo=sample.metainfo)
        new.gt_sem_seg = PixelData(data=label)
        out.append(new)
    return out


@contextmanager
def _rest_weighted(head, num_classes: int) -> Iterator[None]:
    """Losses with a ``class_weight`` of the dataset's classes get one weight more for the rest
    column (never a label: its weight changes nothing)."""
    losses = loss_modules(head)
    saved = [getattr(loss, 'class_weight', None) for loss in losses]
    for loss, weight in zip(losses, saved):
        if weight is not None and len(weight) == num_classes:
            loss.class_weight = [*weight, 0.0]
    try:
        yield
    finally:
        for loss, weight in zip(losses, saved):
            if hasattr(loss, 'class_weight'):
                loss.class_weight = weight


def universal_head_class(cls: type) -> type:
    """``cls`` with :class:`UniversalHeadMixin` (one class per head type, made once)."""
    if cls.loss_by_feat is not BaseDecodeHead.loss_by_feat and not issubclass(
        cls, UniversalHeadMixin
    ):
        raise ValueError(
            f'{cls.__name__} computes its loss in its own loss_by_feat, where the universal '
            "logits cannot be turned into each dataset's classes before MMSeg's loss: "
            'universal_head=True needs a head with BaseDecodeHead.loss_by_feat (PSPHead, '
            'FCNHead, ASPPHead, DepthwiseSeparableASPPHead, UPerHead, SegformerHead, ...)'
        )
    if issubclass(cls, UniversalHeadMixin):
        return cls
    if cls not in _CLASSES:
        _CLASSES[cls] = type(
            f'Universal{cls.__name__}',
            (UniversalHeadMixin, cls),
            dict(__module__=__name__, __doc__=f'{cls.__name__} predicting universal classes.'),
        )
    return _CLASSES[cls]


def is_universal(head) -> bool:
    return isinstance(head, UniversalHeadMixin)
