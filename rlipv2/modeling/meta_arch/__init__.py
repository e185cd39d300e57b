from .rlipv2 import RLIPv2

__all__ = ["RLIPv2"]
