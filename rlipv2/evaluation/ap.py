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


def _class_desc_score_order(cls: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Stable order by class, then descending score (``np.lexsort((-scores, cls))``).

    For finite float32 scores and class ids below 2**30, one stable sort of an int64 key does it: the
    float bits mapped to an order-preserving integer (``-0.0`` counted as ``0.0``), negated, below the class.
    """
    if scores.dtype == np.float32 and len(cls) and 0 <= cls.min() and cls.max() < (1 << 30) and \
            np.isfinite(scores).all():
        bits = (scores + np.float32(0.0)).view(np.int32).astype(np.int64)  # + 0.0: -0.0 -> 0.0
        ordered = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # monotonic in the float value
        key = (cls << 33) | ((1 << 31) - ordered)  # descending score inside a class; fits in 33 bits
        return np.argsort(key, kind="stable")
    return np.lexsort((-scores, cls))


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
    neg = -scores
    perm = _class_desc_score_order(cls, scores)  # stable: equal scores keep the append order
    c_sorted = cls[perm]
    s_sorted = neg[perm]
    lo = np.searchsorted(c_sorted, np.arange(K), "left")
    hi = np.searchsorted(c_sorted, np.arange(K), "right")
    fallback = np.zeros(K, bool)
    has_det = hi > lo
    fallback |= has_det & (num_gt <= 0)
    if not stable:
        tie = (c_sorted[1:] == c_sorted[:-1]) & (s_sorted[1:] == s_sorted[:-1])
        if tie.any():
            fallback[np.unique(c_sorted[1:][tie])] = True
    t_sorted = tp[perm]
    ctp_all = np.cumsum(t_sorted)
    cfp_all = np.cumsum(1 - t_sorted)
    base_tp = np.r_[0, ctp_all][lo]  # per class: counts before its segment
    base_fp = np.r_[0, cfp_all][lo]
    good = has_det & ~fallback
    gk = np.flatnonzero(good)
    # Only true positives matter: recall rises only there, and precision peaks there (it falls at every
    # false positive), so max(prec[rec >= t]) over a class = max over its true positives with rec >= t
    # (0 when there is none, as the per-class loop gives: every precision is then 0 or absent).
    P = np.flatnonzero(t_sorted == 1)
    c_tp = c_sorted[P]
    ctp_p = ctp_all[P] - base_tp[c_tp]
    cfp_p = cfp_all[P] - base_fp[c_tp]
    with np.errstate(divide="ignore", invalid="ignore"):
        rec_p = ctp_p / num_gt[c_tp]
        prec_p = ctp_p / (cfp_p + ctp_p)
    if len(gk):
        plo = np.searchsorted(c_tp, gk, "left")
        phi = np.searchsorted(c_tp, gk, "right")
        prec_ext = np.r_[prec_p, 0.0]
        acc = np.zeros(len(gk))
        for t in thresholds:
            below_cum = np.r_[0, np.cumsum(rec_p < t)]
            start = plo + (below_cum[phi] - below_cum[plo])  # rec is non-decreasing inside a class
            m = np.maximum.reduceat(prec_ext, np.stack([np.minimum(start, len(P)), phi], 1).ravel())[::2] \
                if len(P) else np.zeros(len(gk))
            acc = acc + np.where(start < phi, m, 0.0) / 11.0
        ap[gk] = acc
        with np.errstate(divide="ignore", invalid="ignore"):
            max_rec[gk] = (ctp_all[hi[gk] - 1] - base_tp[gk]) / num_gt[gk]
    for k in np.flatnonzero(fallback).tolist():
        seg = np.sort(perm[lo[k] : hi[k]])  # the class's detections in append order
        r, p = tp_fp_curve(scores[seg], tp[seg], int(num_gt[k]), stable=stable)
        ap[k] = eleven_point_ap(r, p, thresholds)
        max_rec[k] = np.amax(r) if num_gt[k] > 0 else 0.0
        if keep_curves:
            curves[k] = (r, p)
    if keep_curves:
        for k in gk.tolist():
            ctp = ctp_all[lo[k] : hi[k]] - base_tp[k]
            cfp = cfp_all[lo[k] : hi[k]] - base_fp[k]
            with np.errstate(divide="ignore", invalid="ignore"):
                curves[k] = (ctp / num_gt[k], ctp / (cfp + ctp))
    return ap, max_rec, curves
