"""Multi-scale deformable attention (Deformable-DETR), with a pure-PyTorch path that always works.

Conventions (Deformable-DETR):
    value               (N, S, M, D)   S = sum of H_l * W_l over levels
    spatial_shapes      (L, 2) int64   (H_l, W_l)
    level_start_index   (L,)   int64   start of each level in S
    sampling_locations  (N, Lq, M, L, P, 2) normalised (x, y) in [0, 1]; outside points read zeros
    attention_weights   (N, Lq, M, L, P)
    output              (N, Lq, M * D)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ms_deform_attn", "ms_deform_attn_pytorch", "MSDeformAttn"]

_BACKENDS = ("auto", "pytorch", "cpu", "cuda")


def ms_deform_attn_pytorch(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Reference implementation with ``grid_sample`` (bilinear, zero padding, align_corners=False).

    Returns (N, Lq, M * D).
    """
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = sampling_locations.shape
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    value_list = value.split(sizes, dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        # (N, H*W, M, D) -> (N*M, D, H, W)
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(N * M, D, int(h), int(w))
        # (N, Lq, M, P, 2) -> (N*M, Lq, P, 2)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    # (N*M, D, Lq, L, P) weighted by (N*M, 1, Lq, L, P)
    weights = attention_weights.transpose(1, 2).reshape(N * M, 1, Lq, L * P)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return out.view(N, M * D, Lq).transpose(1, 2).contiguous()


_warned_fallback = False


def _check_shapes(value, spatial_shapes, sampling_locations, attention_weights) -> None:
    """Raise ValueError naming the argument whose shape does not fit (N, S, M, D) / (L, 2) / (N, Lq, M, L, P, 2)."""
    if value.dim() != 4:
        raise ValueError(f"ms_deform_attn: value must have shape (N, S, M, D), got {tuple(value.shape)}")
    N, S, M, _ = value.shape
    if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2 or spatial_shapes.shape[0] < 1:
        raise ValueError(f"ms_deform_attn: spatial_shapes must have shape (L, 2), got {tuple(spatial_shapes.shape)}")
    L = spatial_shapes.shape[0]
    loc = sampling_locations
    if loc.dim() != 6 or loc.shape[0] != N or loc.shape[2] != M or loc.shape[3] != L or loc.shape[5] != 2:
        raise ValueError(f"ms_deform_attn: sampling_locations must have shape (N, Lq, M, L, P, 2) = "
                         f"({N}, Lq, {M}, {L}, P, 2), got {tuple(loc.shape)}")
    want = (N, loc.shape[1], M, L, loc.shape[4])
    if tuple(attention_weights.shape) != want:
        raise ValueError(f"ms_deform_attn: attention_weights must have shape (N, Lq, M, L, P) = {want}, "
                         f"got {tuple(attention_weights.shape)}")
    total = int((spatial_shapes[:, 0] * spatial_shapes[:, 1]).sum())
    if total != S:
        raise ValueError(f"ms_deform_attn: value has S = {S} positions but spatial_shapes sums to {total}")


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    im2col_step: int = 64,
    backend: str = "auto",
) -> torch.Tensor:
    """Multi-scale deformable attention; see the module docstring for shapes.

    ``backend`` is "auto" (compiled kernel when available, else PyTorch), "pytorch", "cpu" or "cuda".
    """
    global _warned_fallback
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend in ("cpu", "cuda"):
        raise RuntimeError(f"the {backend} kernel of ms_deform_attn is not built into rlipv2._C")
    _check_shapes(value, spatial_shapes, sampling_locations, attention_weights)
    if backend == "auto" and not _warned_fallback:
        _warned_fallback = True
    return ms_deform_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module with Deformable-DETR's parameters and initialisation.

    Parameter names (``sampling_offsets``, ``attention_weights``, ``value_proj``, ``output_proj``)
    match the official checkpoints one to one.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4,
                 backend: str = "auto"):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.backend = backend
        self.im2col_step = 64
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias = nn.Parameter(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(self, query, reference_points, input_flatten, input_spatial_shapes,
                input_level_start_index, input_padding_mask=None):
        """
        Args:
            query: (N, Lq, C)
            reference_points: (N, Lq, L, 2) in [0, 1] (top-left (0,0), bottom-right (1,1)), or
                (N, Lq, L, 4) boxes (cx, cy, w, h) for box-relative sampling.
            input_flatten: (N, S, C)
            input_spatial_shapes: (L, 2) int64
            input_level_start_index: (L,) int64
            input_padding_mask: (N, S), True on padding.
        Returns:
            (N, Lq, C)
        """
        N, Lq, _ = query.shape
        _, S, _ = input_flatten.shape
        value = self.value_proj(input_flatten)
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], 0.0)
        value = value.view(N, S, self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(N, Lq, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(N, Lq, self.n_heads, self.n_levels * self.n_points)
        weights = F.softmax(weights, -1).view(N, Lq, self.n_heads, self.n_levels, self.n_points)
        if reference_points.shape[-1] == 2:
            normalizer = torch.stack([input_spatial_shapes[..., 1], input_spatial_shapes[..., 0]], -1)
            locations = (reference_points[:, :, None, :, None, :]
                         + offsets / normalizer[None, None, None, :, None, :])
        elif reference_points.shape[-1] == 4:
            locations = (reference_points[:, :, None, :, None, :2]
                         + offsets / self.n_points * reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError(
                f"reference_points must end in 2 or 4 coordinates, got shape {tuple(reference_points.shape)}")
        output = ms_deform_attn(value, input_spatial_shapes, input_level_start_index, locations, weights,
                                self.im2col_step, backend=self.backend)
        return self.output_proj(output)
