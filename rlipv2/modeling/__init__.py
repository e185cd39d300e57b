"""RLIPv2 model components: matcher, criteria, losses, pair targets and post-processing."""
from .criterion import DEFAULT_LOSS_WEIGHTS, SetCriterionHOI, TaggerCriterion
from .matcher import HungarianMatcherHOI
from .postprocess import HOIPostProcessor, SGGPostProcessor
from .targets import build_batch_pair_targets, build_pair_targets

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "HungarianMatcherHOI",
    "SetCriterionHOI",
    "TaggerCriterion",
    "HOIPostProcessor",
    "SGGPostProcessor",
    "build_pair_targets",
    "build_batch_pair_targets",
]
