from .cdcl_cascade_encoder_decoder import CDCLCascadeEncoderDecoder
from .cdcl_encoder_decoder import CDCLEncoderDecoder
from .cdcl_tta_model import CDCLTTAModel

__all__ = ['CDCLCascadeEncoderDecoder', 'CDCLEncoderDecoder', 'CDCLTTAModel']
