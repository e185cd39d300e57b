"""Batched triplet NMS of the evaluators: the numpy implementation against a plain loop and, bit for bit,
against the compiled op, on many groups at once (image x triplet class), ties, large groups and NaN."""
import numpy as np
import pytest

from rlipv2.evaluation import nms as nms_mod
from rlipv2.evaluation.nms import batched_triplet_nms, triplet_nms_numpy


def _loop_keep(sub, obj, scores, groups, thresh=0.7, alpha=1.0, beta=0.5):
    """Per group: visit by descending score (NaN first, ties: higher index first), keep, drop the later
    predictions whose overlap is not <= thresh. Array-valued powers, as the official numpy code."""
    n = len(scores)
    keep = np.zeros(n, bool)

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
        inter = w * h
        area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.array([np.float64(inter) / np.float64(area - inter)])

    for g in sorted(set(groups.tolist())):
        members = [i for i in range(n) if groups[i] == g]
        members.sort(key=lambda i: (np.isnan(scores[i]), 0.0 if np.isnan(scores[i]) else scores[i], i), reverse=True)
        while members:
            i = members.pop(0)
            keep[i] = True
            rest = []
            for j in members:
                with np.errstate(invalid="ignore"):
                    ovr = (iou(sub[i], sub[j]) ** alpha * iou(obj[i], obj[j]) ** beta)[0]
                if ovr <= thresh:
                    rest.append(j)
            members = rest
    return keep


def _case(n, n_groups, seed, ties=False):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (3, 2))
    base = np.concatenate([xy, xy + rng.uniform(20, 60, (3, 2))], 1)

    def boxes():
        b = base[rng.integers(0, 3, n)] + rng.normal(0, 3, (n, 4))
        return np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], 1)

    scores = rng.integers(0, 5, n) / 5 if ties else rng.uniform(0, 1, n)
    return boxes(), boxes(), scores, rng.integers(0, n_groups, n)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("params", [(0.7, 1.0, 0.5), (0.5, 2.0, 1.0), (0.3, 1.0, 0.0)])
def test_numpy_matches_loop(seed, ties, params):
    sub, obj, scores, groups = _case(150, 7, seed, ties)
    np.testing.assert_array_equal(triplet_nms_numpy(sub, obj, scores, groups, *params),
                                  _loop_keep(sub, obj, scores, groups, *params))


def test_large_groups_blocked_path_and_passes(monkeypatch):
    sub, obj, scores, groups = _case(300, 3, 11)
    expected = _loop_keep(sub, obj, scores, groups)
    monkeypatch.setattr(nms_mod, "_PAIR_SEGMENT_MAX", 40)  # groups of ~100 take the blocked scan
    np.testing.assert_array_equal(triplet_nms_numpy(sub, obj, scores, groups), expected)
    monkeypatch.setattr(nms_mod, "_PAIR_SEGMENT_MAX", 1024)
    monkeypatch.setattr(nms_mod, "_PAIRS_PER_PASS", 10)  # one segment per pass
    np.testing.assert_array_equal(triplet_nms_numpy(sub, obj, scores, groups), expected)


def test_nan_scores_and_degenerate_boxes():
    sub, obj, scores, groups = _case(60, 2, 3)
    scores[[3, 17]] = np.nan
    sub[5] = [10, 10, 9, 9]  # area 0 with +1: NaN overlaps suppress
    obj[5] = [10, 10, 9, 9]
    np.testing.assert_array_equal(triplet_nms_numpy(sub, obj, scores, groups), _loop_keep(sub, obj, scores, groups))


def test_empty_and_single():
    assert triplet_nms_numpy(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)).shape == (0,)
    assert triplet_nms_numpy(np.ones((1, 4)), np.ones((1, 4)), np.ones(1), np.zeros(1, np.int64)).tolist() == [True]


def test_auto_backend_stays_numpy_without_torch():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from rlipv2.evaluation.nms import batched_triplet_nms; "
            "b = np.array([[0, 0, 10, 10.]] * 3); "
            "k = batched_triplet_nms(b, b, np.array([.9, .8, .7]), np.zeros(3, int)); "
            "assert k.tolist() == [True, False, False]; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _compiled():
    torch = pytest.importorskip("torch")  # noqa: F841
    from rlipv2.utils.extension import load_extension

    ext = load_extension()
    if ext is None or not hasattr(ext, "triplet_nms"):
        pytest.skip("rlipv2._C is not built")
    return ext


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("params", [(0.7, 1.0, 0.5), (0.5, 2.0, 1.0), (0.6, 0.7, 1.3)])
def test_compiled_op_equals_numpy_bit_for_bit(seed, params):
    _compiled()
    rng = np.random.default_rng(seed)
    # many images x classes in one call, as the evaluators make it
    n = 20000
    xy = rng.uniform(0, 50, (n, 2))
    sub = np.concatenate([xy, xy + rng.uniform(5, 30, (n, 2))], 1)
    obj = sub + rng.normal(0, 2, (n, 4))
    obj[:, 2:] = np.maximum(obj[:, 2:], obj[:, :2])
    scores = np.round(rng.random(n), 2)  # ties
    groups = rng.integers(0, 3000, n)
    a = batched_triplet_nms(sub, obj, scores, groups, *params, backend="numpy")
    b = batched_triplet_nms(sub, obj, scores, groups, *params, backend="cpu")
    np.testing.assert_array_equal(a, b)
    assert 0 < a.sum() < n


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("grouped", [False, True])
def test_apply_triplet_nms_fast_orders_equal_the_general_rule(seed, grouped):
    """Candidates in (image, rank) order take shortcuts (one sort by group; tie rules only for the images
    with equal scores); they must give the general order: per image, groups by first appearance, each by
    descending score with equal scores later-first (``grouped``), or by descending score with ties in
    that grouped order (not ``grouped``)."""
    from rlipv2.evaluation.hico_core import HOICandidates, _grouped_order, apply_triplet_nms, image_group_ids

    rng = np.random.default_rng(seed)
    parts = []
    for img in range(30):
        n = int(rng.integers(1, 40))
        sc = np.sort(np.round(rng.random(n), 1 if img % 3 == 0 else 6))[::-1].astype(np.float32)  # ties
        xy = rng.uniform(0, 30, (n, 2))
        b = np.concatenate([xy, xy + rng.uniform(10, 30, (n, 2))], 1).astype(np.float32)
        z = np.zeros(n, np.int64)
        parts.append(HOICandidates(np.full(n, img), b, b + rng.normal(0, 2, (n, 4)).astype(np.float32).clip(0),
                                   z, rng.integers(0, 2, n), rng.integers(0, 2, n), sc, np.arange(n)))
    cand = HOICandidates.concatenate(parts)
    cand.obj_boxes[:, 2:] = np.maximum(cand.obj_boxes[:, 2:], cand.obj_boxes[:, :2])
    out = apply_triplet_nms(cand, 2, 2, grouped=grouped)
    code = (cand.sub_labels * 2 + cand.obj_labels) * 2 + cand.verbs
    keep = triplet_nms_numpy(cand.sub_boxes, cand.obj_boxes, cand.scores, image_group_ids(cand.image, code))
    kept = np.flatnonzero(keep)
    g = _grouped_order(cand.image[kept], code[kept], cand.scores[kept])
    if not grouped:
        g = g[np.lexsort((np.arange(len(g)), -cand.scores[kept][g].astype(np.float64), cand.image[kept][g]))]
    np.testing.assert_array_equal(out.query, cand.query[kept[g]])
    np.testing.assert_array_equal(out.image, cand.image[kept[g]])
