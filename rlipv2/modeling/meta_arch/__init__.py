from .rlipv2 import RLIPv2
from .rtagger import RTagger

__all__ = ["RLIPv2", "RTagger"]
