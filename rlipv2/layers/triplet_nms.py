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

import math

import numpy as np
import torch

from rlipv2.utils.extension import load_extension

__all__ = ["triplet_nms", "triplet_nms_pytorch"]

_BACKENDS = ("auto", "pytorch", "cpu", "cuda")
# Above this many predictions, the pytorch path builds one overlap matrix per group instead of one
# (N, N) matrix.
_FULL_MATRIX_MAX = 4096
# The overlap matrix of a segment is built in blocks of rows of at most this many entries (32 MB in
# float64 per temporary), so that memory stays bounded whatever the group size: 20,000 predictions of one
# group took 18.8 GB as one (N, N) matrix.
_MAX_BLOCK_ENTRIES = 1 << 22


def _pair_overlap(xp, sub_a, obj_a, sub_b, obj_b, alpha: float, beta: float):
    """Pair overlap between every row of (sub_a, obj_a) (A, 4) and of (sub_b, obj_b) (B, 4): (A, B).

    ``xp`` is ``numpy`` or ``torch``: the arrays are of that library.
    """

    def iou(a, b):
        area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
        area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
        # One (A, B) array per coordinate: much faster in numpy than broadcasting (A, 1, 2) x (1, B, 2).
        w = (xp.minimum(a[:, 2, None], b[None, :, 2]) - xp.maximum(a[:, 0, None], b[None, :, 0]) + 1).clip(min=0)
        h = (xp.minimum(a[:, 3, None], b[None, :, 3]) - xp.maximum(a[:, 1, None], b[None, :, 1]) + 1).clip(min=0)
        inter = w * h
        return inter / (area_a[:, None] + area_b[None, :] - inter)

    return iou(sub_a, sub_b) ** alpha * iou(obj_a, obj_b) ** beta


def _greedy_blocks(xp, g, s, o, thresh: float, alpha: float, beta: float, arange) -> list[int]:
    """Greedy NMS of one segment (predictions in processing order): the positions kept.

    Row i suppresses a later row j of its group when ``overlap(i, j) <= thresh`` is false. The overlap
    rows are computed in blocks of at most ``_MAX_BLOCK_ENTRIES`` entries, and only for the rows of the
    block that no earlier kept row removed.
    """
    m = len(g)
    rows = max(1, _MAX_BLOCK_ENTRIES // max(m, 1))
    removed = np.zeros(m, dtype=bool)
    kept = []
    cols = arange(m)
    for r0 in range(0, m, rows):
        alive = np.flatnonzero(~removed[r0:r0 + rows]) + r0
        if alive.size == 0:
            continue
        idx = alive if xp is np else torch.as_tensor(alive, device=cols.device)
        ovr = _pair_overlap(xp, s[idx], o[idx], s[r0:], o[r0:], alpha, beta)  # (rows alive, m - r0)
        suppress = (idx[:, None] < cols[None, r0:]) & (g[idx, None] == g[None, r0:]) & ~(ovr <= thresh)
        if xp is torch:
            suppress = suppress.cpu().numpy()
        for k, i in enumerate(alive.tolist()):
            if removed[i]:
                continue
            kept.append(i)
            removed[r0:] |= suppress[k]
    return kept


def triplet_nms_pytorch(sub_boxes, obj_boxes, scores, groups, thresh=0.7, alpha=1.0, beta=0.5) -> torch.Tensor:
    """Vectorised triplet NMS without the extension (see the module docstring). Returns a bool mask (N,).

    The overlap matrices are computed with torch ops on the inputs' device, except for CPU tensors,
    where numpy computes them: for the ~100 predictions of one image it is several times faster than
    per-op torch calls. The greedy scan runs on the host.
    """
    n = scores.numel()
    device = scores.device
    keep = torch.zeros(n, dtype=torch.bool, device=device)
    if n == 0:
        return keep
    sub_boxes, obj_boxes, scores, groups = (t.detach() for t in (sub_boxes, obj_boxes, scores, groups))
    with torch.no_grad():
        if device.type == "cpu":
            xp = np
            sub = sub_boxes.to(torch.float64).numpy()
            obj = obj_boxes.to(torch.float64).numpy()
            grp = groups.numpy()
            # Descending score, ties with the higher index first == reversed stable ascending sort.
            order = np.argsort(scores.to(torch.float64).numpy(), kind="stable")[::-1]
            # Bring each group together, keeping the score order inside it.
            order = order[np.argsort(grp[order], kind="stable")]
            arange = np.arange
        else:
            xp = torch
            sub, obj, grp = sub_boxes.to(torch.float64), obj_boxes.to(torch.float64), groups
            order = torch.sort(scores.to(torch.float64), stable=True).indices.flip(0)
            order = order[torch.sort(grp[order], stable=True).indices]
            arange = lambda m: torch.arange(m, device=device)
        g, s, o = grp[order], sub[order], obj[order]
        if n <= _FULL_MATRIX_MAX:
            segments = [(0, n)]
        else:  # one matrix per group
            g_list = g.tolist()
            cuts = [0] + [i for i in range(1, n) if g_list[i] != g_list[i - 1]] + [n]
            segments = list(zip(cuts[:-1], cuts[1:]))
        kept_positions = []
        for a, b in segments:
            kept_positions.extend(a + i for i in _greedy_blocks(xp, g[a:b], s[a:b], o[a:b], thresh, alpha, beta,
                                                                arange))
        kept = np.asarray(order.tolist() if xp is torch else order)[kept_positions]
        keep[torch.as_tensor(kept, dtype=torch.int64, device=device)] = True
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
        thresh: suppress when the pair overlap is above this (a finite number; NaN is refused).
        alpha, beta: exponents of the subject and object IoUs in the pair overlap.
        backend: "auto", "pytorch", "cpu" or "cuda".
    Returns:
        (N,) bool mask of the kept predictions, on the inputs' device.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"triplet_nms: backend must be one of {_BACKENDS}, got {backend!r}")
    for name, v in (("thresh", thresh), ("alpha", alpha), ("beta", beta)):
        try:
            finite = not isinstance(v, bool) and math.isfinite(float(v))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise ValueError(f"triplet_nms: {name} must be a finite number, got {v!r}")
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
