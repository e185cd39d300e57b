"""Average-precision primitives shared by the HOI / SGG evaluators.

- 11-point interpolated AP (HICO-DET, RLIPv2's OI evaluator) with two threshold vectors:
  ``NUMPY_ARANGE_THRESHOLDS`` (``np.arange(0., 1.1, 0.1)``: 0.6000000000000001, 0.7000000000000001, as
  in every QPIC-family Python port) and ``MATLAB_COLON_THRESHOLDS`` (MATLAB's ``0:0.1:1``, whose second
  half is computed from the right end and so holds exactly 0.6 and 0.7).
- VOC all-point AP (V-COCO ``vsrl_eval.py``, the GCL / PySGG Open Images protocol).
- ``tp_fp_curve``: sort one class's detections by score and accumulate (the per-class step).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "NUMPY_ARANGE_THRESHOLDS",
    "MATLAB_COLON_THRESHOLDS",
    "eleven_point_ap",
    "voc_all_point_ap",
    "tp_fp_curve",
]

# np.arange(0., 1.1, 0.1): the Python ports' thresholds (0.30000000000000004, 0.6000000000000001, ...).
NUMPY_ARANGE_THRESHOLDS = np.arange(0.0, 1.1, 0.1)
# MATLAB colon 0:0.1:1: a + k*d for the first half, b - (n - k)*d for the second half.
MATLAB_COLON_THRESHOLDS = np.array([k * 0.1 if k <= 5 else 1.0 - (10 - k) * 0.1 for k in range(11)])


def eleven_point_ap(rec: np.ndarray, prec: np.ndarray, thresholds: np.ndarray = NUMPY_ARANGE_THRESHOLDS) -> float:
    """11-point interpolated AP: sum over t of max(prec[rec >= t]) / 11 (0 when no recall reaches t).

    Args:
        rec: (N,) recall after each detection (non-decreasing, as produced by a cumsum).
        prec: (N,) precision after each detection.
        thresholds: the 11 recall thresholds.
    The terms are accumulated left to right as ``ap = ap + p / 11.``, like the official loops, so the
    result is bit-identical to them.
    """
    rec = np.asarray(rec)
    prec = np.asarray(prec)
    ap = 0.0
    if rec.size == 0:
        return ap
    # rec is non-decreasing, so {rec >= t} is a suffix; max over it = suffix maximum at its start.
    suffix_max = np.maximum.accumulate(prec[::-1])[::-1]
    starts = np.searchsorted(rec, thresholds, side="left")
    if not np.isfinite(rec).all() or np.any(np.diff(rec) < 0):  # NaN recall (no GT) or unsorted: masks
        for t in thresholds:
            m = rec >= t
            ap = ap + (float(np.max(prec[m])) if m.any() else 0) / 11.0
        return ap
    for s in starts:
        p = suffix_max[s] if s < rec.size else 0
        ap = ap + p / 11.0
    return float(ap)


def voc_all_point_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOC2010+ all-point AP: area under the monotone precision envelope (as vsrl_eval's voc_ap).

    Args:
        rec, prec: (N,) recall and precision after each detection.
    """
    mrec = np.concatenate(([0.0], np.asarray(rec, dtype=np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(prec, dtype=np.float64), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def tp_fp_curve(scores: np.ndarray, tp: np.ndarray, num_gt: int, stable: bool = False):
    """Sort one class's detections by descending score and return (rec, prec) after each detection.

    Args:
        scores: (N,) detection scores, in the order the official code appended them.
        tp: (N,) 1 for a true positive, 0 for a false positive.
        num_gt: number of ground-truth instances of the class (the recall denominator).
        stable: False reproduces ``np.argsort(-score)`` (NumPy's default, non-stable quicksort) of the
            Python ports; True a stable sort (MATLAB ``sort``).
    Returns:
        rec (N,) float64 = cumsum(tp) / num_gt and prec (N,) float64 = cumsum(tp) / (cumsum(tp) + cumsum(fp)).
    """
    tp = np.asarray(tp, dtype=np.int64)
    order = np.argsort(-np.asarray(scores), kind="stable" if stable else None)
    tp = tp[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1 - tp)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = ctp / num_gt
        prec = ctp / (cfp + ctp)
    return rec, prec
