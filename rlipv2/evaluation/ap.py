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
    "per_class_eleven_point_ap",
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


def per_class_eleven_point_ap(cls: np.ndarray, scores: np.ndarray, tp: np.ndarray, num_gt: np.ndarray,
                              thresholds: np.ndarray = NUMPY_ARANGE_THRESHOLDS, stable: bool = False,
                              keep_curves: bool = False):
    """``tp_fp_curve`` + ``eleven_point_ap`` for every class at once, bit-identical to the per-class loop.

    Args:
        cls: (N,) class index in [0, K) of each detection; within a class, detections are in the order
            the official code appended them (what its per-class sort sees).
        scores, tp: (N,) scores and 0/1 true-positive flags.
        num_gt: (K,) ground-truth count per class.
        stable: as in ``tp_fp_curve`` (False: NumPy's default sort of each class's ``-score``).
        keep_curves: also return {class: (rec, prec)} for the classes with detections.
    Returns:
        ap (K,), max_rec (K,) (0 for classes without GT or detections), curves (dict or None).

    One stable sort by (class, -score) replaces the per-class sorts. A class whose scores tie under the
    non-stable rule, or that has detections but no GT (infinite / NaN recall), goes through the
    per-class functions, so the result never depends on the vectorised path.
    """
    num_gt = np.asarray(num_gt, np.int64)
    K = len(num_gt)
    ap = np.zeros(K)
    max_rec = np.zeros(K)
    curves = {} if keep_curves else None
    cls = np.asarray(cls, np.int64)
    n = len(cls)
    if n == 0:
        return ap, max_rec, curves
    scores = np.asarray(scores)
    tp = np.asarray(tp, np.int64)
    order = np.argsort(cls, kind="stable")  # per class, in append order
    c_app = cls[order]
    lo = np.searchsorted(c_app, np.arange(K), "left")
    hi = np.searchsorted(c_app, np.arange(K), "right")
    neg = -scores[order]
    by_score = np.lexsort((neg, c_app))  # stable: equal scores keep the append order
    perm = order[by_score]
    s_sorted = neg[by_score]
    fallback = np.zeros(K, bool)
    has_det = hi > lo
    fallback |= has_det & (num_gt <= 0)
    if not stable:
        tie = (c_app[by_score][1:] == c_app[by_score][:-1]) & (s_sorted[1:] == s_sorted[:-1])
        if tie.any():
            fallback[np.unique(c_app[by_score][1:][tie])] = True
    t_sorted = tp[perm]
    ctp_all = np.cumsum(t_sorted)
    cfp_all = np.cumsum(1 - t_sorted)
    base = np.repeat(np.r_[0, ctp_all][lo], hi - lo)
    base_fp = np.repeat(np.r_[0, cfp_all][lo], hi - lo)
    ctp = ctp_all - base
    cfp = cfp_all - base_fp
    gt_rep = np.repeat(num_gt, hi - lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = ctp / gt_rep
        prec = ctp / (cfp + ctp)
    good = has_det & ~fallback
    gk = np.flatnonzero(good)
    if len(gk):
        prec_ext = np.r_[prec, 0.0]
        seg_lo, seg_hi = lo[gk], hi[gk]
        acc = np.zeros(len(gk))
        for t in thresholds:
            # rec is non-decreasing in a class: {rec >= t} is a suffix starting after the entries below t
            below = np.add.reduceat(np.r_[(rec < t).astype(np.int64), 0], np.stack([seg_lo, seg_hi], 1).ravel())[::2]
            below = np.where(seg_hi > seg_lo, below, 0)
            start = seg_lo + below
            idx = np.stack([np.minimum(start, n), seg_hi], 1).ravel()
            m = np.maximum.reduceat(prec_ext, idx)[::2]
            acc = acc + np.where(start < seg_hi, m, 0.0) / 11.0
        ap[gk] = acc
        max_rec[gk] = rec[seg_hi - 1]
    for k in np.flatnonzero(fallback).tolist():
        a, b = lo[k], hi[k]
        seg = order[a:b]
        r, p = tp_fp_curve(scores[seg], tp[seg], int(num_gt[k]), stable=stable)
        ap[k] = eleven_point_ap(r, p, thresholds)
        max_rec[k] = np.amax(r) if num_gt[k] > 0 else 0.0
        if keep_curves:
            curves[k] = (r, p)
    if keep_curves:
        for k in gk.tolist():
            curves[k] = (rec[lo[k] : hi[k]], prec[lo[k] : hi[k]])
    return ap, max_rec, curves
