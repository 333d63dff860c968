"""The CDCL segmentor of cascade models (OCRNet, PointRend)."""

from mmseg.models.segmentors import CascadeEncoderDecoder
from mmseg.registry import MODELS

from .cdcl_encoder_decoder import CDCLEncoderDecoder


@MODELS.register_module()
class CDCLCascadeEncoderDecoder(CDCLEncoderDecoder, CascadeEncoderDecoder):
    """MMSeg's CascadeEncoderDecoder trained across datasets: every stage runs once per dataset
    of the batch, on its samples, the later stages taking that dataset's earlier outputs.

    ``CDCLEncoderDecoder`` builds it from a stock cascade config (one with ``num_stages``)::

        _base_ = ['mmseg::ocrnet/ocrnet_hr18s_4xb2-80k_cityscapes-512x1024.py']
        model = dict(type='CDCLEncoderDecoder', dataset_names=['cityscapes', 'camvid'],
                     num_classes=[19, 11])

    Args:
        num_stages (int): Stages of the cascade, as in MMSeg.
        **kwargs: Arguments of :class:`CDCLEncoderDecoder`.
    """

    plain_type = 'CascadeEncoderDecoder'

    def _decode_losses(self, feats, parts, routing, groups):
        """Each dataset's losses of the cascade, every stage on that dataset's samples."""
        losses = {}
        for g, (d, _, samples) in enumerate(groups):
            with self.dataset(d):
                losses[d] = CascadeEncoderDecoder._decode_head_forward_train(
                    self, parts()[g], samples
                )
        return losses
