"""Detectron2's Swin Transformer with every norm and position table frozen, as in official RLIPv2.

The official ``models/swin/backbone.py`` freezes every backbone parameter whose name contains
``absolute_pos_embed``, ``relative_position_bias_table`` or ``norm``: that is every LayerNorm in the
network (block norms, patch-merging norms, the patch-embedding norm and the output norms), not only
the output norms. Detectron2's ``SwinTransformer`` has the same module and parameter names as the
official (Swin-det) implementation, so official weights load by prefix.
"""
from __future__ import annotations

import torch
from detectron2.modeling.backbone.swin import SwinTransformer
from torch import nn

__all__ = ["FrozenNormSwinTransformer", "SWIN_FROZEN_KEYWORDS", "DropPath"]

SWIN_FROZEN_KEYWORDS = ("absolute_pos_embed", "relative_position_bias_table", "norm")


class DropPath(nn.Module):
    """Stochastic depth per sample (as timm's ``DropPath``): zero a residual branch with probability
    ``drop_prob`` in training and rescale the kept ones by ``1 / (1 - drop_prob)``."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


class FrozenNormSwinTransformer(SwinTransformer):
    """``SwinTransformer`` (outputs ``p1``-``p3`` by default: strides 8/16/32) with frozen norms.

    Swin-T: embed_dim 96, depths (2,2,6,2), heads (3,6,12,24), drop_path 0.2.
    Swin-L: embed_dim 192, depths (2,2,18,2), heads (6,12,24,48), drop_path 0.5.
    """

    def __init__(self, *args, out_indices=(1, 2, 3), freeze_norms: bool = True, drop_path_rate: float = 0.2,
                 **kwargs):
        # Detectron2 imports timm for DropPath when drop_path_rate > 0; build without it and add ours
        # with the same linear decay rule over all blocks.
        super().__init__(*args, out_indices=tuple(out_indices), drop_path_rate=0.0, **kwargs)
        blocks = [blk for layer in self.layers for blk in layer.blocks]
        rates = torch.linspace(0, drop_path_rate, len(blocks)).tolist()
        for blk, rate in zip(blocks, rates):
            blk.drop_path = DropPath(rate) if rate > 0 else nn.Identity()
        if freeze_norms:
            for name, p in self.named_parameters():
                if any(k in name for k in SWIN_FROZEN_KEYWORDS):
                    p.requires_grad_(False)
