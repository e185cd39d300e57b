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
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from rlipv2.utils.extension import load_extension

__all__ = ["ms_deform_attn", "ms_deform_attn_pytorch", "MSDeformAttn", "resolve_backend"]

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


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step):
    """Validate the inputs of :func:`ms_deform_attn`; raise ValueError naming the argument and the shape."""
    args = {"value": value, "spatial_shapes": spatial_shapes, "level_start_index": level_start_index,
            "sampling_locations": sampling_locations, "attention_weights": attention_weights}
    for name, t in args.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"ms_deform_attn: {name} must be a torch.Tensor, got {type(t).__name__}")
    if value.dim() != 4:
        raise ValueError(f"ms_deform_attn: value must have shape (N, S, M, D), got {_shape(value)}")
    N, S, M, D = value.shape
    if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2 or spatial_shapes.shape[0] < 1:
        raise ValueError(f"ms_deform_attn: spatial_shapes must have shape (L, 2) with (H, W) rows and L >= 1, "
                         f"got {_shape(spatial_shapes)}")
    L = spatial_shapes.shape[0]
    if spatial_shapes.is_floating_point() or spatial_shapes.is_complex():
        raise ValueError(f"ms_deform_attn: spatial_shapes must be an int64 tensor of shape (L, 2), "
                         f"got dtype {spatial_shapes.dtype}")
    if level_start_index.shape != (L,) or level_start_index.is_floating_point():
        raise ValueError(f"ms_deform_attn: level_start_index must be an int64 tensor of shape (L,) = ({L},), "
                         f"got {_shape(level_start_index)} {level_start_index.dtype}")
    if sampling_locations.dim() != 6 or sampling_locations.shape[0] != N or sampling_locations.shape[2] != M \
            or sampling_locations.shape[3] != L or sampling_locations.shape[5] != 2:
        raise ValueError(f"ms_deform_attn: sampling_locations must have shape (N, Lq, M, L, P, 2) = "
                         f"({N}, Lq, {M}, {L}, P, 2), got {_shape(sampling_locations)}")
    Lq, P = sampling_locations.shape[1], sampling_locations.shape[4]
    if _shape(attention_weights) != (N, Lq, M, L, P):
        raise ValueError(f"ms_deform_attn: attention_weights must have shape (N, Lq, M, L, P) = "
                         f"({N}, {Lq}, {M}, {L}, {P}), got {_shape(attention_weights)}")
    for name in ("value", "sampling_locations", "attention_weights"):
        if not args[name].is_floating_point():
            raise ValueError(f"ms_deform_attn: {name} must be a floating-point tensor, got {args[name].dtype}")
    if not (value.dtype == sampling_locations.dtype == attention_weights.dtype):
        raise ValueError(f"ms_deform_attn: value, sampling_locations and attention_weights must have one dtype, "
                         f"got {value.dtype}, {sampling_locations.dtype}, {attention_weights.dtype}")
    devices = {name: t.device for name, t in args.items()}
    if len(set(devices.values())) != 1:
        raise ValueError("ms_deform_attn: all inputs must be on one device, got "
                         + ", ".join(f"{k}={v}" for k, v in devices.items()))
    if not isinstance(im2col_step, int) or isinstance(im2col_step, bool) or im2col_step < 1:
        raise ValueError(f"ms_deform_attn: im2col_step must be a positive int, got {im2col_step!r}")
    # One device-to-host copy for both index tensors.
    rows = torch.cat([spatial_shapes.reshape(-1), level_start_index.reshape(-1)]).tolist()
    hw = list(zip(rows[0:2 * L:2], rows[1:2 * L:2]))
    starts = rows[2 * L:]
    if any(h < 1 or w < 1 for h, w in hw):
        raise ValueError(f"ms_deform_attn: spatial_shapes must hold positive (H, W) per level, got {hw}")
    expected_starts = [0]
    for h, w in hw[:-1]:
        expected_starts.append(expected_starts[-1] + h * w)
    if starts != expected_starts:
        raise ValueError(f"ms_deform_attn: level_start_index must be the start of each level in S, i.e. the "
                         f"cumulative sums of H*W from spatial_shapes {hw}: expected {expected_starts}, got {starts}")
    total = sum(h * w for h, w in hw)
    if S != total:
        raise ValueError(f"ms_deform_attn: value must have shape (N, S, M, D) with S = sum of H*W over "
                         f"spatial_shapes = {total}, got S = {S} (value shape {_shape(value)})")


def _kernel(name: str):
    ext = load_extension()
    fn = getattr(ext, name, None) if ext is not None else None
    if fn is None:
        raise RuntimeError(f"ms_deform_attn: rlipv2._C has no {name}; build the extension "
                           "(`pip install -e . --no-build-isolation`, or `make build-cuda` for CUDA)")
    return fn


def _function_forward(ctx, kind, value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                      im2col_step):
    ctx.im2col_step = im2col_step
    ctx.kind = kind
    ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    return _kernel(f"ms_deform_attn_{kind}_forward")(value, spatial_shapes, level_start_index, sampling_locations,
                                                    attention_weights, im2col_step)


def _function_backward(ctx, grad_output):
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
    grad_value, grad_loc, grad_attn = _kernel(f"ms_deform_attn_{ctx.kind}_backward")(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights, grad_output.contiguous(),
        ctx.im2col_step)
    return grad_value, None, None, grad_loc, grad_attn, None


class _MSDeformAttnCPUFunction(torch.autograd.Function):
    """Autograd wrapper of the C++ CPU kernels of ``rlipv2._C``."""

    @staticmethod
    def forward(ctx, value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step):
        return _function_forward(ctx, "cpu", value, spatial_shapes, level_start_index, sampling_locations,
                                 attention_weights, im2col_step)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _function_backward(ctx, grad_output)


class _MSDeformAttnCUDAFunction(torch.autograd.Function):
    """Autograd wrapper of the CUDA kernels of ``rlipv2._C`` (fp16/bf16 computed in float32)."""

    @staticmethod
    def forward(ctx, value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step):
        return _function_forward(ctx, "cuda", value, spatial_shapes, level_start_index, sampling_locations,
                                 attention_weights, im2col_step)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _function_backward(ctx, grad_output)


_FUNCTIONS = {"cpu": _MSDeformAttnCPUFunction, "cuda": _MSDeformAttnCUDAFunction}
_warned_fallback: set = set()


def _has_kernel(device_type: str) -> bool:
    ext = load_extension()
    if ext is None:
        return False
    if device_type == "cuda":
        return bool(ext.with_cuda()) and hasattr(ext, "ms_deform_attn_cuda_forward")
    return device_type == "cpu" and hasattr(ext, "ms_deform_attn_cpu_forward")


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend ``ms_deform_attn`` uses for tensors on ``device`` ("pytorch", "cpu" or "cuda")."""
    if backend not in _BACKENDS:
        raise ValueError(f"ms_deform_attn: backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "auto":
        if _has_kernel(device.type):
            return device.type
        if device.type not in _warned_fallback:
            _warned_fallback.add(device.type)
            warnings.warn(f"ms_deform_attn: no compiled kernel for {device.type} tensors in rlipv2._C; using the "
                          "pure-PyTorch path (slower). See docs/ops.md to build the extension.",
                          RuntimeWarning, stacklevel=3)
        return "pytorch"
    if backend in ("cpu", "cuda"):
        if device.type != backend:
            raise ValueError(f"ms_deform_attn: backend={backend!r} needs {backend} tensors, got tensors on {device}")
        if not _has_kernel(backend):
            raise RuntimeError(f"ms_deform_attn: backend={backend!r} is not built into rlipv2._C "
                               "(see docs/ops.md for the build commands)")
    return backend


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    im2col_step: int = 64,
    backend: str = "auto",
) -> torch.Tensor:
    """Multi-scale deformable attention; see the module docstring for shapes. Returns (N, Lq, M * D).

    ``backend``: "pytorch" (``grid_sample``, always available), "cpu" / "cuda" (the C++ / CUDA kernels
    of ``rlipv2._C``), or "auto": the kernel for the tensors' device when it is built, else "pytorch"
    with a one-time warning. ``im2col_step`` is accepted for compatibility with Deformable-DETR; the
    kernels process the whole batch at once. Bad input raises ValueError naming the argument.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"ms_deform_attn: backend must be one of {_BACKENDS}, got {backend!r}")
    _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step)
    backend = resolve_backend(backend, value.device)
    if backend == "pytorch":
        return ms_deform_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)
    return _FUNCTIONS[backend].apply(value, spatial_shapes, level_start_index, sampling_locations,
                                     attention_weights, im2col_step)


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

    def _point_locations(self, query, reference_points, spatial_shapes):
        """Sampling locations ``ref + offset / (W_l, H_l)`` (N, Lq, H, L, P, 2) for point references (N, Lq, L, 2).

        The division by each level's size is folded into the ``sampling_offsets`` weights and bias (a
        (H*L*P*2, C) rescale, not a pass over the (N, Lq, H*L*P*2) offsets), and the reference is added
        in place in a (N*Lq, H, L*P*2) layout: 4x faster than the broadcast divide and add on CPU
        (R50 encoder, 7,320 queries: 17 -> 4 ms per layer), equal to rounding.
        """
        n, lq = query.shape[:2]
        h, lv, p = self.n_heads, self.n_levels, self.n_points
        size = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1).to(self.sampling_offsets.weight)
        inv = (1.0 / size)[None, :, None, :].expand(h, lv, p, 2).reshape(-1)  # (H*L*P*2,)
        offsets = F.linear(query, self.sampling_offsets.weight * inv[:, None], self.sampling_offsets.bias * inv)
        ref = reference_points.expand(n, lq, lv, 2).reshape(n * lq, 1, lv, 1, 2)
        ref = ref.expand(n * lq, 1, lv, p, 2).reshape(n * lq, 1, lv * p * 2)  # the reference of every point
        offsets = offsets.view(n * lq, h, lv * p * 2)
        if offsets.dtype == ref.dtype:
            # in place on the fresh linear output (autograd-safe: the add needs neither operand for backward)
            locations = offsets.add_(ref)
        else:  # autocast: let type promotion keep the float32 reference precision
            locations = ref + offsets
        return locations.view(n, lq, h, lv, p, 2)

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
            value = value.masked_fill_(input_padding_mask[..., None], 0.0)  # in place: a fresh linear output
        value = value.view(N, S, self.n_heads, self.d_model // self.n_heads)
        weights = self.attention_weights(query).view(N, Lq, self.n_heads, self.n_levels * self.n_points)
        weights = F.softmax(weights, -1).view(N, Lq, self.n_heads, self.n_levels, self.n_points)
        if reference_points.shape[-1] == 2:
            locations = self._point_locations(query, reference_points, input_spatial_shapes)
        elif reference_points.shape[-1] == 4:
            offsets = self.sampling_offsets(query).view(N, Lq, self.n_heads, self.n_levels, self.n_points, 2)
            locations = (reference_points[:, :, None, :, None, :2]
                         + offsets / self.n_points * reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError(
                f"reference_points must end in 2 or 4 coordinates, got shape {tuple(reference_points.shape)}")
        # Under autocast, value may be reduced precision while the softmax and locations are float32.
        dtype = torch.promote_types(torch.promote_types(value.dtype, locations.dtype), weights.dtype)
        value, locations, weights = value.to(dtype), locations.to(dtype), weights.to(dtype)
        output = ms_deform_attn(value, input_spatial_shapes, input_level_start_index, locations, weights,
                                self.im2col_step, backend=self.backend)
        return self.output_proj(output)
