"""Triplet (pairwise) NMS for HOI predictions, as used by the QPIC-lineage HICO-DET evaluator.

Each prediction is a (subject box, object box, score) triple that belongs to a *group*: the triplet
class (subject label, object label, verb). Within each group, predictions are visited greedily by
descending score; a kept prediction suppresses every later one of the same group whose pair overlap

    overlap = IoU(sub_i, sub_j) ** alpha * IoU(obj_i, obj_j) ** beta

is larger than ``thresh``. IoUs use the "+1 pixel" area convention of the official evaluator
(``area = (x2 - x1 + 1) * (y2 - y1 + 1)``) and are computed in float64. Equal scores are visited with
the higher index first (the order of the official ``scores.argsort()[::-1]``), and an undefined
overlap (NaN, from degenerate boxes) suppresses, as ``overlap <= thresh`` is then false.

Backends: "pytorch" (vectorised, always available), "cpu" and "cuda" (kernels in ``rlipv2._C``), and
"auto" which picks the compiled kernel for the tensors' device when it is built, else "pytorch".
"""
from __future__ import annotations

import numpy as np
import torch

from rlipv2.utils.extension import load_extension

__all__ = ["triplet_nms", "triplet_nms_pytorch"]

_BACKENDS = ("auto", "pytorch", "cpu", "cuda")
# Above this many predictions, the pytorch path builds one overlap matrix per group instead of one
# (N, N) matrix.
_FULL_MATRIX_MAX = 4096


def _pair_overlap(sub_a, obj_a, sub_b, obj_b, alpha: float, beta: float) -> torch.Tensor:
    """Pair overlap between every row of (sub_a, obj_a) (A, 4) and of (sub_b, obj_b) (B, 4): (A, B)."""

    def iou(a, b):
        area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
        area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
        lt = torch.maximum(a[:, None, :2], b[None, :, :2])
        rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
        wh = (rb - lt + 1).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        return inter / (area_a[:, None] + area_b[None, :] - inter)

    return iou(sub_a, sub_b).pow(alpha) * iou(obj_a, obj_b).pow(beta)


def _greedy_scan(suppress) -> list[bool]:
    """Greedy NMS over a (n, n) numpy bool matrix in processing order: suppress[i, j] (j > i)."""
    n = suppress.shape[0]
    removed = np.zeros(n, dtype=bool)
    keep = [False] * n
    for i in range(n):
        if removed[i]:
            continue
        keep[i] = True
        removed |= suppress[i]
    return keep


def triplet_nms_pytorch(sub_boxes, obj_boxes, scores, groups, thresh=0.7, alpha=1.0, beta=0.5) -> torch.Tensor:
    """Vectorised PyTorch triplet NMS (see the module docstring). Returns a bool keep mask (N,)."""
    n = scores.numel()
    device = scores.device
    keep = torch.zeros(n, dtype=torch.bool, device=device)
    if n == 0:
        return keep
    sub = sub_boxes.to(torch.float64)
    obj = obj_boxes.to(torch.float64)
    # Descending score, ties with the higher index first == reversed stable ascending sort.
    order = torch.sort(scores.to(torch.float64), stable=True).indices.flip(0)
    # Bring each group together, keeping the score order inside it.
    order = order[torch.sort(groups[order], stable=True).indices]
    g = groups[order]
    s, o = sub[order], obj[order]
    kept_positions = []
    if n <= _FULL_MATRIX_MAX:
        segments = [(0, n)]
    else:
        counts = torch.unique_consecutive(g, return_counts=True)[1].tolist()
        starts = [0]
        for c in counts[:-1]:
            starts.append(starts[-1] + c)
        segments = list(zip(starts, [a + c for a, c in zip(starts, counts)]))
    for a, b in segments:
        ovr = _pair_overlap(s[a:b], o[a:b], s[a:b], o[a:b], alpha, beta)
        m = b - a
        later = torch.ones(m, m, dtype=torch.bool, device=device).triu_(1)
        suppress = later & (g[a:b, None] == g[None, a:b]) & ~(ovr <= thresh)
        flags = _greedy_scan(suppress.cpu().numpy())
        kept_positions.extend(a + i for i, f in enumerate(flags) if f)
    if kept_positions:
        keep[order[torch.tensor(kept_positions, device=device)]] = True
    return keep


def _check_inputs(sub_boxes, obj_boxes, scores, groups) -> None:
    for name, t in (("sub_boxes", sub_boxes), ("obj_boxes", obj_boxes), ("scores", scores), ("groups", groups)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"triplet_nms: {name} must be a torch.Tensor, got {type(t).__name__}")
    if scores.dim() != 1:
        raise ValueError(f"triplet_nms: scores must have shape (N,), got {tuple(scores.shape)}")
    n = scores.shape[0]
    for name, t in (("sub_boxes", sub_boxes), ("obj_boxes", obj_boxes)):
        if t.dim() != 2 or t.shape != (n, 4):
            raise ValueError(f"triplet_nms: {name} must have shape (N, 4) = ({n}, 4) (x1, y1, x2, y2), "
                             f"got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"triplet_nms: {name} must be a floating-point tensor, got {t.dtype}")
    if not scores.is_floating_point():
        raise ValueError(f"triplet_nms: scores must be a floating-point tensor, got {scores.dtype}")
    if groups.shape != (n,):
        raise ValueError(f"triplet_nms: groups must have shape (N,) = ({n},), got {tuple(groups.shape)}")
    if groups.is_floating_point() or groups.is_complex() or groups.dtype == torch.bool:
        raise ValueError(f"triplet_nms: groups must be an integer tensor (int64), got {groups.dtype}")
    devices = {t.device for t in (sub_boxes, obj_boxes, scores, groups)}
    if len(devices) != 1:
        raise ValueError(f"triplet_nms: sub_boxes, obj_boxes, scores and groups must be on one device, got "
                         f"{sorted(str(d) for d in devices)}")


def triplet_nms(sub_boxes: torch.Tensor, obj_boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                thresh: float = 0.7, alpha: float = 1.0, beta: float = 0.5, backend: str = "auto") -> torch.Tensor:
    """Pairwise NMS of HOI triplets within each group (triplet class).

    Args:
        sub_boxes: (N, 4) subject boxes, absolute (x1, y1, x2, y2).
        obj_boxes: (N, 4) object boxes, absolute (x1, y1, x2, y2).
        scores: (N,) triplet scores.
        groups: (N,) int64 triplet-class id (e.g. a code of subject label, object label and verb);
            predictions only suppress others of the same group.
        thresh: suppress when the pair overlap is above this.
        alpha, beta: exponents of the subject and object IoUs in the pair overlap.
        backend: "auto", "pytorch", "cpu" or "cuda".
    Returns:
        (N,) bool mask of the kept predictions, on the inputs' device.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"triplet_nms: backend must be one of {_BACKENDS}, got {backend!r}")
    _check_inputs(sub_boxes, obj_boxes, scores, groups)
    groups = groups.to(torch.int64)
    is_cuda = scores.device.type == "cuda"
    if backend == "auto":
        ext = load_extension()
        if ext is not None and hasattr(ext, "triplet_nms") and (not is_cuda or ext.with_cuda()):
            backend = "cuda" if is_cuda else "cpu"
        else:
            backend = "pytorch"
    if backend == "pytorch":
        return triplet_nms_pytorch(sub_boxes, obj_boxes, scores, groups, thresh, alpha, beta)
    ext = load_extension()
    if ext is None or not hasattr(ext, "triplet_nms"):
        raise RuntimeError(f"triplet_nms: backend={backend!r} needs rlipv2._C, which is not built "
                           "(`pip install -e . --no-build-isolation`)")
    if backend == "cuda" and not ext.with_cuda():
        raise RuntimeError("triplet_nms: rlipv2._C was built without CUDA kernels (`make build-cuda`)")
    if (backend == "cuda") != is_cuda:
        raise ValueError(f"triplet_nms: backend={backend!r} needs {'CUDA' if backend == 'cuda' else 'CPU'} "
                         f"tensors, got tensors on {scores.device}")
    return ext.triplet_nms(sub_boxes, obj_boxes, scores, groups, float(thresh), float(alpha), float(beta))
