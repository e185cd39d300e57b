"""Detectron2's Swin Transformer with every norm and position table frozen, as in official RLIPv2.

The official ``models/swin/backbone.py`` freezes every backbone parameter whose name contains
``absolute_pos_embed``, ``relative_position_bias_table`` or ``norm``: that is every LayerNorm in the
network (block norms, patch-merging norms, the patch-embedding norm and the output norms), not only
the output norms. Detectron2's ``SwinTransformer`` has the same module and parameter names as the
official (Swin-det) implementation, so official weights load by prefix.
"""
from __future__ import annotations

from detectron2.modeling.backbone.swin import SwinTransformer

__all__ = ["FrozenNormSwinTransformer", "SWIN_FROZEN_KEYWORDS"]

SWIN_FROZEN_KEYWORDS = ("absolute_pos_embed", "relative_position_bias_table", "norm")


class FrozenNormSwinTransformer(SwinTransformer):
    """``SwinTransformer`` (outputs ``p1``-``p3`` by default: strides 8/16/32) with frozen norms.

    Swin-T: embed_dim 96, depths (2,2,6,2), heads (3,6,12,24), drop_path 0.2.
    Swin-L: embed_dim 192, depths (2,2,18,2), heads (6,12,24,48), drop_path 0.5.
    """

    def __init__(self, *args, out_indices=(1, 2, 3), freeze_norms: bool = True, **kwargs):
        super().__init__(*args, out_indices=tuple(out_indices), **kwargs)
        if freeze_norms:
            for name, p in self.named_parameters():
                if any(k in name for k in SWIN_FROZEN_KEYWORDS):
                    p.requires_grad_(False)
