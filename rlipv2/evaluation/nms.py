"""Batched triplet (pairwise) NMS for the evaluators: all images and triplet classes in one call.

The rule is the one of the official ``triplet_nms_filter`` (CDN / RLIPv2) and of
``rlipv2.layers.triplet_nms``: inside each group (e.g. an (image, subject label, object label, verb)
code), predictions are visited by descending score -- equal scores with the higher index first, NaN
first -- and a kept prediction suppresses every later one of its group whose pair overlap
``IoU(sub_i, sub_j) ** alpha * IoU(obj_i, obj_j) ** beta`` is not ``<= thresh`` (so NaN suppresses).
IoUs use the "+1 pixel" areas and float64.

Two implementations, equal to the last bit (tests/evaluation/test_nms.py):
- ``triplet_nms_numpy``: no torch. Groups of at most ``_PAIR_SEGMENT_MAX`` members are resolved all at
  once: the suppressing (earlier, later) pairs of every group are computed in one array pass, then the
  greedy rule is applied rank by rank (rank r of every group at the same time, since a prediction can
  only be removed by one of lower rank). Bigger groups use a blocked greedy scan.
- the ``triplet_nms`` op of ``rlipv2._C`` (C++), one call for all groups.

``batched_triplet_nms`` uses the compiled op when torch is already imported (a Detectron2 process) and
the extension is built, and the numpy implementation otherwise, so that the offline CLIs never pay for
importing torch.
"""
from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["triplet_nms_numpy", "batched_triplet_nms", "nms_processing_order"]

# groups up to this size go through the all-pairs path; larger ones through the blocked scan
_PAIR_SEGMENT_MAX = 1024
# pairs evaluated per array pass (bounds the temporaries to a few hundred MB)
_PAIRS_PER_PASS = 1 << 22


def nms_processing_order(scores: np.ndarray, groups: np.ndarray, score_sorted: bool = False) -> np.ndarray:
    """Visiting order: by group, then descending score (NaN first), then descending index.

    ``score_sorted``: the caller guarantees that scores never increase along the array within a group
    (no NaN), as for candidates in (image, rank) order; then one stable sort by group and the reversal
    of each run of equal (group, score) give the same order.
    """
    sc = np.asarray(scores)
    g = np.asarray(groups, np.int64)
    n = len(sc)
    if not score_sorted:
        sc = sc.astype(np.float64)
        nan = np.isnan(sc)
        return np.lexsort((-np.arange(n), -np.where(nan, 0.0, sc), ~nan, g))
    order = np.argsort(g, kind="stable")
    if n < 2:
        return order
    gs, ss = g[order], sc[order]
    tie = (gs[1:] == gs[:-1]) & (ss[1:] == ss[:-1])
    if tie.any():  # equal scores of a group: higher index first
        head = np.r_[True, ~tie]
        run_start = np.maximum.accumulate(np.where(head, np.arange(n), 0))
        run_end = np.r_[np.flatnonzero(head)[1:], n][np.cumsum(head) - 1]
        pos = np.arange(n)
        order = order[run_start + run_end - 1 - pos]
    return order


def _iou_plus1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) float64 boxes, "+1" areas, with the operation order of the C++ kernel."""
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    w = np.maximum(0.0, np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1)
    h = np.maximum(0.0, np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1)
    inter = w * h
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a + area_b - inter)


def _iou_cols(a, b, i, j) -> np.ndarray:
    """IoU of boxes i and j given as coordinate columns (4 contiguous arrays): cheaper gathers than rows."""
    ax1, ay1, ax2, ay2 = (c[i] for c in a)
    bx1, by1, bx2, by2 = (c[j] for c in b)
    area_a = (ax2 - ax1 + 1) * (ay2 - ay1 + 1)
    area_b = (bx2 - bx1 + 1) * (by2 - by1 + 1)
    w = np.maximum(0.0, np.minimum(ax2, bx2) - np.maximum(ax1, bx1) + 1)
    h = np.maximum(0.0, np.minimum(ay2, by2) - np.maximum(ay1, by1) + 1)
    inter = w * h
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a + area_b - inter)


def _pair_overlap(sub_cols, obj_cols, i, j, alpha: float, beta: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _iou_cols(sub_cols, sub_cols, i, j) ** alpha * _iou_cols(obj_cols, obj_cols, i, j) ** beta


def _resolve_pairs(seg_start, seg_len, sub_cols, obj_cols, thresh, alpha, beta, removed) -> None:
    """All-pairs path for segments (positions in visiting order) given by start / length arrays; marks
    ``removed``. ``sub_cols`` / ``obj_cols``: the 4 coordinate columns of the boxes in visiting order."""
    m = seg_len
    # every position p of a segment pairs with the later positions of its segment
    pos = np.repeat(seg_start, m) + (np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m))
    rank = pos - np.repeat(seg_start, m)
    partners = np.repeat(m, m) - 1 - rank
    total = int(partners.sum())
    if total == 0:
        return
    src = np.repeat(pos, partners)
    step = np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
    dst = src + 1 + step
    ovr = _pair_overlap(sub_cols, obj_cols, src, dst, alpha, beta)
    sup = ~(ovr <= thresh)
    src, dst = src[sup], dst[sup]
    if len(src) == 0:
        return
    src_rank = np.repeat(rank, partners)[sup]
    by_rank = np.argsort(src_rank, kind="stable")
    src, dst, src_rank = src[by_rank], dst[by_rank], src_rank[by_rank]
    bounds = np.searchsorted(src_rank, np.arange(int(src_rank[-1]) + 2))
    for r in range(len(bounds) - 1):
        a, b = bounds[r], bounds[r + 1]
        if a == b:
            continue
        s = src[a:b]
        alive = ~removed[s]  # final: only lower ranks remove rank r
        removed[dst[a:b][alive]] = True


def _resolve_block(order, start, length, sub, obj, thresh, alpha, beta, removed) -> None:
    """Greedy scan of one large segment, overlap rows computed in blocks."""
    p = order[start : start + length]
    s, o = sub[p], obj[p]
    rows = max(1, (1 << 22) // length)
    rem = removed[start : start + length]  # a view: updates land in ``removed``
    cols = np.arange(length)
    for r0 in range(0, length, rows):
        alive = np.flatnonzero(~rem[r0 : r0 + rows]) + r0
        if alive.size == 0:
            continue
        ii = np.repeat(alive, length - r0)
        jj = np.tile(cols[r0:], len(alive))
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            ovr = _iou_plus1(s[ii], s[jj]) ** alpha * _iou_plus1(o[ii], o[jj]) ** beta
        sup = (~(ovr <= thresh)).reshape(len(alive), length - r0) & (alive[:, None] < cols[None, r0:])
        for k, i in enumerate(alive.tolist()):
            if rem[i]:
                continue
            rem[r0:] |= sup[k]


def triplet_nms_numpy(sub_boxes, obj_boxes, scores, groups, thresh: float = 0.7, alpha: float = 1.0,
                      beta: float = 0.5, score_sorted: bool = False) -> np.ndarray:
    """Keep mask (N,) bool of pairwise triplet NMS within each group, without torch (see the module doc).
    ``score_sorted``: see ``nms_processing_order`` (a faster sort for inputs in descending score order)."""
    sc = np.asarray(scores)
    n = len(sc)
    keep = np.zeros(n, bool)
    if n == 0:
        return keep
    sub = np.ascontiguousarray(sub_boxes, np.float64).reshape(n, 4)
    obj = np.ascontiguousarray(obj_boxes, np.float64).reshape(n, 4)
    g = np.asarray(groups, np.int64).reshape(n)
    order = nms_processing_order(sc, g, score_sorted=score_sorted and not np.isnan(sc).any())
    gs = g[order]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
    lens = np.diff(np.r_[starts, n])
    removed = np.zeros(n, bool)  # by position in ``order``
    multi = lens > 1
    small = multi & (lens <= _PAIR_SEGMENT_MAX)
    s_start, s_len = starts[small], lens[small]
    if len(s_start):
        # coordinate columns in visiting order: the pair passes gather from contiguous 1-D arrays
        sub_cols = tuple(np.ascontiguousarray(sub[order].T))
        obj_cols = sub_cols if obj_boxes is sub_boxes else tuple(np.ascontiguousarray(obj[order].T))
        pairs = s_len * (s_len - 1) // 2
        cum = np.cumsum(pairs)
        a = 0
        while a < len(s_start):  # passes of at most _PAIRS_PER_PASS pairs (at least one segment each)
            base = cum[a] - pairs[a]
            b = max(a + 1, int(np.searchsorted(cum, base + _PAIRS_PER_PASS, "right")))
            _resolve_pairs(s_start[a:b], s_len[a:b], sub_cols, obj_cols, thresh, alpha, beta, removed)
            a = b
    for st, ln in zip(starts[lens > _PAIR_SEGMENT_MAX].tolist(), lens[lens > _PAIR_SEGMENT_MAX].tolist()):
        _resolve_block(order, st, ln, sub, obj, thresh, alpha, beta, removed)
    keep[order[~removed]] = True
    return keep


def _compiled_op():
    """``rlipv2._C`` when torch is already imported and the extension has the op; else None."""
    if "torch" not in sys.modules or os.environ.get("RLIPV2_DISABLE_EXT", "0") == "1":
        return None
    from rlipv2.utils.extension import load_extension

    ext = load_extension()
    return ext if ext is not None and hasattr(ext, "triplet_nms") else None


def batched_triplet_nms(sub_boxes, obj_boxes, scores, groups, thresh: float = 0.7, alpha: float = 1.0,
                        beta: float = 0.5, backend: str = "auto", score_sorted: bool = False) -> np.ndarray:
    """Triplet NMS of all groups in one call. ``backend``: "auto" (compiled op if torch is already
    imported and the extension is built, else numpy), "numpy" or "cpu" (the compiled op)."""
    if backend not in ("auto", "numpy", "cpu"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'cpu', got {backend!r}")
    ext = None if backend == "numpy" else _compiled_op()
    if backend == "cpu" and ext is None:
        import torch  # noqa: F401  (asked for explicitly)

        from rlipv2.utils.extension import load_extension

        ext = load_extension()
        if ext is None or not hasattr(ext, "triplet_nms"):
            raise RuntimeError("batched_triplet_nms: backend='cpu' needs the compiled rlipv2._C")
    if ext is None:
        return triplet_nms_numpy(sub_boxes, obj_boxes, scores, groups, thresh, alpha, beta, score_sorted)
    import torch

    t = lambda x, dt: torch.from_numpy(np.ascontiguousarray(x, dt))  # noqa: E731
    n = len(scores)
    keep = ext.triplet_nms(t(np.asarray(sub_boxes).reshape(n, 4), np.float64),
                           t(np.asarray(obj_boxes).reshape(n, 4), np.float64), t(scores, np.float64),
                           t(groups, np.int64), float(thresh), float(alpha), float(beta))
    return keep.numpy()
