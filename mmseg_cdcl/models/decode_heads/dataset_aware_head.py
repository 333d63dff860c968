"""Per-dataset label spaces of CDCL: shared head convs (DSBN), one classifier per dataset."""
from typing import List, Sequence, Union

from torch import Tensor, nn

from ..layers import DSBN_CFG, DatasetAwareModule, dsbn_cfg


class DatasetAwareHeadMixin(DatasetAwareModule):
    """Turns an MMSeg decode head into a CDCL head.

    Its convs are Dataset-Aware Blocks (DSBN norms) and ``conv_seg`` holds one classifier per
    dataset, each with its own number of classes and ignore index. A batch routed to one
    dataset (:func:`mmseg_cdcl.dataset_context`) gives that dataset's logits, as the plain head;
    a mixed batch gives one logits tensor per dataset group, and :meth:`loss_by_feat` returns
    each dataset's losses under ``'<dataset index>.<loss name>'``.

    Args:
        num_classes (Sequence[int]): Classes of each dataset, e.g. ``[19, 19, 11]``.
        ignore_index (int | Sequence[int]): Ignored label, shared or per dataset. Defaults to 255.
        norm_cfg (dict): Norm of the head's convs. Defaults to DSBN; a plain BN config gives
            the "shared BN" ablation.
        **kwargs: Arguments of the MMSeg head.
    """

    def __init__(self, num_classes: Sequence[int], ignore_index: Union[int, Sequence[int]] = 255,
                 norm_cfg: dict = DSBN_CFG, **kwargs):
        name = type(self).__name__
        if isinstance(num_classes, int) or not num_classes:
            raise ValueError(f'{name}: num_classes must list the classes of each dataset, '
                             f'e.g. [19, 11], got {num_classes!r}')
        num_datasets = len(num_classes)
        if isinstance(ignore_index, int) or ignore_index is None:
            ignore_index = [ignore_index] * num_datasets
        if len(ignore_index) != num_datasets:
            raise ValueError(f'{name}: ignore_index has {len(ignore_index)} entries but '
                             f'num_classes has {num_datasets} (one per dataset)')
        norm_cfg = dsbn_cfg(norm_cfg, num_datasets, f'{name} with num_classes={list(num_classes)}')
        super().__init__(num_classes=num_classes[0], ignore_index=ignore_index[0],
                         norm_cfg=norm_cfg, **kwargs)
        self.num_datasets = num_datasets
        self.dataset_num_classes = tuple(num_classes)
        self.dataset_ignore_index = tuple(ignore_index)
        self.conv_seg = nn.ModuleList(nn.Conv2d(self.channels, c, 1) for c in num_classes)

    def cls_seg(self, feat: Tensor) -> Union[Tensor, List[Tensor]]:
        """Classify each sample with its dataset's classifier."""
        routing = self.routing(feat.shape[0])
        if self.dropout is not None:
            feat = self.dropout(feat)
        if routing.single is not None:
            return self.conv_seg[routing.single](feat)
        return [self.conv_seg[d](feat[rows]) for d, rows in routing.groups]

    def loss_by_feat(self, seg_logits: Union[Tensor, List[Tensor]],
                     batch_data_samples: list) -> dict:
        """MMSeg's losses of each dataset group, with that dataset's ignore index."""
        routing = self.routing(len(batch_data_samples))
        if isinstance(seg_logits, Tensor):
            seg_logits = [seg_logits]
        losses = {}
        try:
            for (d, rows), logits in zip(routing.groups, seg_logits):
                samples = (batch_data_samples[rows] if isinstance(rows, slice) else
                           [batch_data_samples[i] for i in rows.tolist()])
                # The base loss reads the ignore index from the head.
                self.ignore_index = self.dataset_ignore_index[d]
                group_losses = super().loss_by_feat(logits, samples)
                losses.update({f'{d}.{key}': value for key, value in group_losses.items()})
        finally:
            self.ignore_index = self.dataset_ignore_index[0]
        return losses
