"""Input projections of the backbone maps to the transformer width, plus the extra stride-64 level.

Official RLIPv2 (``RLIP_ParSeDA.__init__``): ``input_proj[l]`` is Conv1x1 + GroupNorm(32, 256) for
each backbone level, and Conv3x3/stride 2 + GroupNorm(32, 256) for the extra level, whose input is
the RAW last backbone map (not its projection); further extra levels (unused with 4 levels) take the
previous projected level.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["InputProjection"]


class InputProjection(nn.Module):
    """Projects a list of backbone maps to ``hidden_dim`` and appends extra downsampled levels.

    Args:
        in_channels: channels of each backbone level (e.g. R50: [512, 1024, 2048]).
        hidden_dim: transformer width (256).
        num_feature_levels: total levels after the extra ones (4).
        num_groups: GroupNorm groups (32).
    """

    def __init__(self, in_channels, hidden_dim: int = 256, num_feature_levels: int = 4, num_groups: int = 32):
        super().__init__()
        in_channels = list(in_channels)
        if num_feature_levels < len(in_channels):
            raise ValueError(f"num_feature_levels ({num_feature_levels}) < backbone levels ({len(in_channels)})")
        self.num_backbone_levels = len(in_channels)
        projs = [nn.Sequential(nn.Conv2d(c, hidden_dim, kernel_size=1), nn.GroupNorm(num_groups, hidden_dim))
                 for c in in_channels]
        c = in_channels[-1]
        for _ in range(num_feature_levels - len(in_channels)):
            projs.append(nn.Sequential(nn.Conv2d(c, hidden_dim, kernel_size=3, stride=2, padding=1),
                                       nn.GroupNorm(num_groups, hidden_dim)))
            c = hidden_dim
        self.input_proj = nn.ModuleList(projs)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """features: backbone maps, finest first. Returns ``num_feature_levels`` maps of hidden_dim."""
        if len(features) != self.num_backbone_levels:
            raise ValueError(f"expected {self.num_backbone_levels} backbone levels, got {len(features)}")
        srcs = [proj(f) for proj, f in zip(self.input_proj, features)]
        for lvl in range(self.num_backbone_levels, len(self.input_proj)):
            src_in = features[-1] if lvl == self.num_backbone_levels else srcs[-1]
            srcs.append(self.input_proj[lvl](src_in))
        return srcs
