"""per_class_eleven_point_ap: every class at once, bit-identical to the per-class tp_fp_curve + eleven_point_ap."""
import numpy as np
import pytest

from rlipv2.evaluation.ap import (
    MATLAB_COLON_THRESHOLDS,
    NUMPY_ARANGE_THRESHOLDS,
    eleven_point_ap,
    per_class_eleven_point_ap,
    tp_fp_curve,
)


def _loop(cls, scores, tp, num_gt, thresholds, stable):
    K = len(num_gt)
    ap, mr = np.zeros(K), np.zeros(K)
    for k in range(K):
        m = cls == k
        if not m.any():
            continue
        r, p = tp_fp_curve(scores[m], tp[m], int(num_gt[k]), stable=stable)
        ap[k] = eleven_point_ap(r, p, thresholds)
        mr[k] = np.amax(r) if num_gt[k] > 0 else 0.0
    return ap, mr


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("stable", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_per_class_loop(seed, stable, ties):
    rng = np.random.default_rng(seed)
    K, n = 40, 3000
    cls = rng.integers(0, K, n)
    scores = (rng.integers(0, 20, n) / 20 if ties else rng.random(n)).astype(np.float32)
    tp = (rng.random(n) < 0.4).astype(np.int64)
    num_gt = np.bincount(cls, weights=tp, minlength=K).astype(np.int64) + rng.integers(0, 4, K)
    num_gt[:3] = 0  # classes without GT (recall inf / NaN) take the per-class path
    thresholds = MATLAB_COLON_THRESHOLDS if stable else NUMPY_ARANGE_THRESHOLDS
    ap, mr, curves = per_class_eleven_point_ap(cls, scores, tp, num_gt, thresholds, stable, keep_curves=True)
    ap2, mr2 = _loop(cls, scores, tp, num_gt, thresholds, stable)
    assert ap.tobytes() == ap2.tobytes() and mr.tobytes() == mr2.tobytes()
    assert set(curves) == set(np.unique(cls).tolist())


def test_empty():
    ap, mr, curves = per_class_eleven_point_ap(np.zeros(0, int), np.zeros(0), np.zeros(0, int), np.array([2, 0]))
    assert ap.tolist() == [0, 0] and curves is None


def test_one_key_sort_equals_lexsort():
    from rlipv2.evaluation.ap import _class_desc_score_order

    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, 1e-38, -1e-38, 0.5, -0.5, 1.0, 3.4e38, -3.4e38, 1e-45], np.float32)
    for trial in range(60):
        n = int(rng.integers(1, 2000))
        cls = rng.integers(0, 50, n)
        sc = rng.choice(special, n) if trial % 2 else rng.standard_normal(n).astype(np.float32)
        np.testing.assert_array_equal(_class_desc_score_order(cls, sc), np.lexsort((-sc, cls)))
    sc64 = rng.random(100)  # float64: the lexsort path
    cls = rng.integers(0, 5, 100)
    np.testing.assert_array_equal(_class_desc_score_order(cls, sc64), np.lexsort((-sc64, cls)))
