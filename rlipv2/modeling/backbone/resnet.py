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


def build_small_resnet(
    width: int = 32,
    num_blocks=(1, 1, 1, 1),
    out_features=("res3", "res4", "res5"),
    norm: str = "BN",
    freeze_at: int = 0,
) -> ResNet:
    """A narrow ResNet of BasicBlocks for training from scratch on small images (demos, CPU).

    Stem (7x7 conv, stride 2, max-pool) with ``width`` channels, then four stages of ``num_blocks``
    BasicBlocks with ``width * (1, 2, 4, 8)`` channels and strides (1, 2, 2, 2): ``res3``-``res5``
    have strides 8/16/32 and ``2 * width``, ``4 * width``, ``8 * width`` channels. ``width=64,
    num_blocks=(2, 2, 2, 2)`` is ResNet-18. Returns a ``detectron2.modeling.backbone.ResNet``.
    """
    from detectron2.modeling.backbone.resnet import BasicBlock

    if len(num_blocks) != 4:
        raise ValueError(f"num_blocks must list 4 stages, got {num_blocks}")
    stages, in_ch = [], width
    for i, n in enumerate(num_blocks):
        out_ch = width * 2**i
        stages.append(ResNet.make_stage(BasicBlock, int(n), stride_per_block=[1 if i == 0 else 2] + [1] * (n - 1),
                                        in_channels=in_ch, out_channels=out_ch, norm=norm))
        in_ch = out_ch
    stem = BasicStem(in_channels=3, out_channels=width, norm=norm)
    return ResNet(stem, stages, out_features=list(out_features), freeze_at=freeze_at)
