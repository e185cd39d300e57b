"""RLIPv2 modeling: backbones, text encoder, ALIF encoder, ParSeDA decoders, heads, meta-architecture.

Importing registers :class:`~rlipv2.modeling.meta_arch.RLIPv2` in Detectron2's META_ARCH_REGISTRY.
"""
from .alif_encoder import ALIFEncoder
from .alif_fusion import GatedBiAttentionFusion
from .backbone import FrozenNormSwinTransformer, build_frozen_resnet
from .label_text_head import LabelTextHead
from .meta_arch import RLIPv2
from .neck import InputProjection
from .parseda_decoder import ParSeDADecoder
from .position_encoding import PositionEmbeddingSine
from .text_encoder import HFTextEncoder

__all__ = ["ALIFEncoder", "GatedBiAttentionFusion", "FrozenNormSwinTransformer", "build_frozen_resnet",
           "LabelTextHead", "RLIPv2", "InputProjection", "ParSeDADecoder", "PositionEmbeddingSine",
           "HFTextEncoder"]
