from .cdcl_cascade_encoder_decoder import CDCLCascadeEncoderDecoder
from .cdcl_encoder_decoder import CDCLEncoderDecoder

__all__ = ['CDCLCascadeEncoderDecoder', 'CDCLEncoderDecoder']
