"""Detectron2 ResNet configured like the official RLIPv2 (torchvision) ResNet.

The official model uses torchvision's ResNet with FrozenBatchNorm2d and returns layer2-layer4
(strides 8/16/32). Detectron2's ResNet is the same network when the stride sits in the 3x3 conv
(``stride_in_1x1=False``, torchvision style); ``res3``-``res5`` are layer2-layer4. The stem and
``res2`` are frozen (``freeze_at=2``), as in the official code where only layer2-4 are trainable.
"""
from __future__ import annotations

from detectron2.modeling.backbone.resnet import BasicStem, ResNet

__all__ = ["build_frozen_resnet"]


def build_frozen_resnet(
    depth: int = 50,
    out_features=("res3", "res4", "res5"),
    freeze_at: int = 2,
    norm: str = "FrozenBN",
    stride_in_1x1: bool = False,
) -> ResNet:
    """Build a Detectron2 ResNet (18/34/50/101) with FrozenBN, frozen stem+res2, outputs res3-res5.

    Returns a ``detectron2.modeling.backbone.ResNet`` whose ``forward(images (N,3,H,W))`` returns
    ``{"res3": (N,C3,H/8,W/8), "res4": ..., "res5": ...}``.
    """
    kwargs = {"norm": norm}
    if depth >= 50:
        kwargs["stride_in_1x1"] = stride_in_1x1
    stages = ResNet.make_default_stages(depth, **kwargs)
    stem = BasicStem(in_channels=3, out_channels=64, norm=norm)
    return ResNet(stem, stages, out_features=list(out_features), freeze_at=freeze_at)
