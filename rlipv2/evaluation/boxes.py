"""Element-wise box IoU variants of the official evaluators and box validation.

All functions take two (N, 4) arrays of absolute (x1, y1, x2, y2) boxes and return the IoU of row i of
``a`` with row i of ``b`` (N,), using the "+1 pixel" area convention ``(x2 - x1 + 1) * (y2 - y1 + 1)``
of the official code, computed in the arrays' common dtype (as NumPy promotes it in the official
scalar code).
"""
from __future__ import annotations

import numpy as np

__all__ = ["iou_qpic", "iou_voc", "pairwise_iou_voc", "check_boxes"]


def iou_qpic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU as the QPIC-family ``compute_IOU`` (a = ground truth, b = prediction).

    Quirk kept on purpose: the IoU is 0 whenever the intersection is at most one pixel thick
    (``max(y1) >= min(y2)`` or ``max(x1) >= min(x2)``), although the +1 convention would count it.
    """
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    left = np.maximum(a[:, 1], b[:, 1])
    right = np.minimum(a[:, 3], b[:, 3])
    top = np.maximum(a[:, 0], b[:, 0])
    bottom = np.minimum(a[:, 2], b[:, 2])
    inter = (right - left + 1) * (bottom - top + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / ((area_a + area_b) - inter)
    return np.where((left >= right) | (top >= bottom), np.zeros((), iou.dtype), iou)


def iou_voc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU as MATLAB ``VOCevaldet_bboxpair`` / ``vsrl_eval.py``: intersection counted only if iw > 0 and ih > 0."""
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1
    inter = iw * ih
    ua = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1) + (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        ov = inter / ua
    return np.where((iw > 0) & (ih > 0), ov, np.zeros((), ov.dtype))


def pairwise_iou_voc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) matrix of +1-convention IoUs (intersection counted only if iw > 0 and ih > 0)."""
    ia = np.repeat(np.arange(len(a)), len(b))
    ib = np.tile(np.arange(len(b)), len(a))
    return iou_voc(a[ia], b[ib]).reshape(len(a), len(b))


def check_boxes(boxes: np.ndarray, what: str) -> np.ndarray:
    """Validate (N, 4) xyxy boxes: finite, x2 >= x1 and y2 >= y1. Raises ValueError naming ``what``."""
    boxes = np.asarray(boxes)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{what}: boxes must have shape (N, 4) (x1, y1, x2, y2), got {boxes.shape}")
    if not np.issubdtype(boxes.dtype, np.number):
        raise ValueError(f"{what}: boxes must be numeric, got dtype {boxes.dtype}")
    if not np.isfinite(boxes).all():
        i = int(np.nonzero(~np.isfinite(boxes).all(1))[0][0])
        raise ValueError(f"{what}: box {i} is not finite: {boxes[i].tolist()}")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise ValueError(f"{what}: box {i} has x2 < x1 or y2 < y1: {boxes[i].tolist()} (boxes must be x1, y1, x2, y2)")
    return boxes
