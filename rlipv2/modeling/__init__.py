"""RLIPv2 modeling: backbones, text encoder, ALIF encoder, ParSeDA decoders, label-text heads, matcher,
criteria, pair targets, post-processing and the meta-architectures.

Importing registers :class:`~rlipv2.modeling.meta_arch.RLIPv2` and :class:`~rlipv2.modeling.meta_arch.RTagger`
in Detectron2's META_ARCH_REGISTRY.
"""
from .alif_encoder import ALIFEncoder
from .alif_fusion import GatedBiAttentionFusion
from .backbone import FrozenNormSwinTransformer, build_frozen_resnet, build_small_resnet
from .criterion import DEFAULT_LOSS_WEIGHTS, SetCriterionHOI, TaggerCriterion
from .label_text_head import LabelTextHead
from .matcher import HungarianMatcherHOI
from .meta_arch import RLIPv2, RTagger
from .neck import InputProjection
from .pair_denoising import PairDenoising
from .parseda_decoder import ParSeDADecoder
from .position_encoding import PositionEmbeddingSine
from .postprocess import HOIPostProcessor, SGGPostProcessor
from .tagger_queries import TaggerQueryGenerator, tagger_pair_slots
from .targets import build_batch_pair_targets, build_pair_targets
from .text_encoder import HFTextEncoder

__all__ = [
    "ALIFEncoder", "GatedBiAttentionFusion", "FrozenNormSwinTransformer", "build_frozen_resnet", "build_small_resnet",
    "LabelTextHead", "RLIPv2", "RTagger", "TaggerQueryGenerator", "tagger_pair_slots",
    "InputProjection", "PairDenoising", "ParSeDADecoder", "PositionEmbeddingSine", "HFTextEncoder",
    "DEFAULT_LOSS_WEIGHTS", "HungarianMatcherHOI", "SetCriterionHOI", "TaggerCriterion",
    "HOIPostProcessor", "SGGPostProcessor", "build_pair_targets", "build_batch_pair_targets",
]
