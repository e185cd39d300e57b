"""Backbones (Detectron2 ResNet with FrozenBN, Detectron2 Swin with frozen norms)."""
from .resnet import build_frozen_resnet, build_small_resnet
from .swin import FrozenNormSwinTransformer

__all__ = ["build_frozen_resnet", "build_small_resnet", "FrozenNormSwinTransformer"]
