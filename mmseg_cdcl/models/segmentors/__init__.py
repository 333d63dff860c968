from .cdcl_encoder_decoder import CDCLEncoderDecoder

__all__ = ['CDCLEncoderDecoder']
