"""Sine position embeddings: the 2-d image embedding and the 4-d box embedding of DAB-DETR.

The image embedding is DETR's normalised sine embedding (temperature 10000, ``num_pos_feats`` per
axis, output channels (y, x)). The official RLIPv2 code has two copies that differ: the ResNet path
(``models/position_encoding.py``) normalises the cumulative sums as ``c / (c_last + eps)``, the Swin
path (``models/swin/position_encoding.py``) as ``(c - 0.5) / (c_last + eps)``. ``offset`` selects
which: 0.0 for ResNet models, -0.5 for Swin models.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PositionEmbeddingSine", "gen_sineembed_for_position"]


class PositionEmbeddingSine(nn.Module):
    """Normalised sine position embedding of a padding mask.

    Args:
        num_pos_feats: features per axis (the output has 2 * num_pos_feats channels).
        temperature: frequency base (10000 in RLIPv2; the scripts' ``pe_temperature 20`` is unused).
        normalize: divide the cumulative sums by the valid extent (True in RLIPv2).
        scale: multiplier after normalisation (2*pi).
        offset: added to the cumulative sums before normalising (0.0 ResNet, -0.5 Swin).
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000, normalize: bool = True,
                 scale: float | None = None, offset: float = 0.0, eps: float = 1e-6):
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("normalize should be True if scale is passed")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        self.offset = offset
        self.eps = eps

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """mask: (N, H, W) bool, True on padding. Returns (N, 2*num_pos_feats, H, W) float32."""
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            y_embed = (y_embed + self.offset) / (y_embed[:, -1:, :] + self.eps) * self.scale
            x_embed = (x_embed + self.offset) / (x_embed[:, :, -1:] + self.eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def gen_sineembed_for_position(pos_tensor: torch.Tensor, num_feats: int = 128,
                               temperature: float = 10000) -> torch.Tensor:
    """DAB-DETR sine embedding of points or boxes.

    pos_tensor: (N, Q, 2) as (x, y) or (N, Q, 4) as (cx, cy, w, h), in [0, 1].
    Returns (N, Q, 2*num_feats) ordered (y, x) or (N, Q, 4*num_feats) ordered (y, x, w, h).
    """
    scale = 2 * math.pi
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=pos_tensor.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)

    def embed(coord: torch.Tensor) -> torch.Tensor:
        p = (coord * scale)[:, :, None] / dim_t
        return torch.stack((p[:, :, 0::2].sin(), p[:, :, 1::2].cos()), dim=3).flatten(2)

    pos_x, pos_y = embed(pos_tensor[:, :, 0]), embed(pos_tensor[:, :, 1])
    if pos_tensor.size(-1) == 2:
        return torch.cat((pos_y, pos_x), dim=2)
    if pos_tensor.size(-1) == 4:
        return torch.cat((pos_y, pos_x, embed(pos_tensor[:, :, 2]), embed(pos_tensor[:, :, 3])), dim=2)
    raise ValueError(f"pos_tensor must end in 2 or 4 coordinates, got shape {tuple(pos_tensor.shape)}")
