"""HungarianMatcherHOI: cost formula by explicit loops, and optimality against brute force."""
import itertools
import math

import pytest
import torch

from rlipv2.modeling.matcher import HungarianMatcherHOI


def _giou_xyxy(a, b):
    """GIoU of two xyxy boxes by hand."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = lambda x: (x[2] - x[0]) * (x[3] - x[1])
    union = area(a) + area(b) - inter
    cw = max(a[2], b[2]) - min(a[0], b[0])
    ch = max(a[3], b[3]) - min(a[1], b[1])
    return inter / union - (cw * ch - union) / (cw * ch)


def _xyxy(cxcywh):
    cx, cy, w, h = cxcywh
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _rand_boxes(shape, g):
    """Random normalised cxcywh boxes well inside the image."""
    centres = torch.rand(*shape, 2, generator=g) * 0.6 + 0.2
    sizes = torch.rand(*shape, 2, generator=g) * 0.3 + 0.05
    return torch.cat([centres, sizes], -1)


def _random_outputs(n, q, k, r, seed):
    g = torch.Generator().manual_seed(seed)
    boxes = lambda: _rand_boxes((n, q), g)
    return {
        "pred_sub_logits": torch.randn(n, q, k + 1, generator=g),
        "pred_obj_logits": torch.randn(n, q, k + 1, generator=g),
        "pred_verb_logits": torch.randn(n, q, r, generator=g),
        "pred_sub_boxes": boxes(),
        "pred_obj_boxes": boxes(),
    }


def _random_targets(p, k, r, seed, missing=()):
    g = torch.Generator().manual_seed(seed)
    boxes = lambda: _rand_boxes((p,), g)
    verb = (torch.rand(p, r, generator=g) > 0.5).float()
    verb[:, 0] = 1.0
    t = {
        "sub_labels": torch.randint(0, k, (p,), generator=g),
        "obj_labels": torch.randint(0, k, (p,), generator=g),
        "verb_labels": verb,
        "sub_boxes": boxes(),
        "obj_boxes": boxes(),
    }
    for j in missing:
        t["obj_boxes"][j] = 0.0
        t["obj_labels"][j] = k
    return t


def _loop_cost(out, tgt, b, q, j, w=(1.0, 1.0, 2.5, 1.0), subject_class=True):
    """Official cost of query q vs target j, written out term by term."""
    w_cls, w_verb, w_l1, w_giou = w
    p_obj = torch.softmax(out["pred_obj_logits"][b, q], -1)
    p_sub = torch.softmax(out["pred_sub_logits"][b, q], -1)
    pv = torch.sigmoid(out["pred_verb_logits"][b, q]).tolist()
    y = tgt["verb_labels"][j].tolist()
    pos = sum(pi * yi for pi, yi in zip(pv, y)) / (sum(y) + 1e-4)
    neg = sum((1 - pi) * (1 - yi) for pi, yi in zip(pv, y)) / (sum(1 - yi for yi in y) + 1e-4)
    c_verb = -(pos + neg) / 2
    sb, ob = out["pred_sub_boxes"][b, q].tolist(), out["pred_obj_boxes"][b, q].tolist()
    tsb, tob = tgt["sub_boxes"][j].tolist(), tgt["obj_boxes"][j].tolist()
    missing = all(v == 0 for v in tob)
    l1_sub = sum(abs(a - c) for a, c in zip(sb, tsb))
    l1_obj = 0.0 if missing else sum(abs(a - c) for a, c in zip(ob, tob))
    g_sub = _giou_xyxy(_xyxy(sb), _xyxy(tsb))
    g_obj = _giou_xyxy(_xyxy(ob), _xyxy(tob))
    c_giou_obj = -g_obj + (-g_sub if missing else 0.0)
    c = w_cls * -p_obj[tgt["obj_labels"][j]].item() + w_verb * c_verb
    c += w_l1 * max(l1_sub, l1_obj) + w_giou * max(-g_sub, c_giou_obj)
    if subject_class:
        c += w_cls * -p_sub[tgt["sub_labels"][j]].item()
    return c


@pytest.mark.parametrize("subject_class", [True, False])
def test_cost_matrix_equals_explicit_loops(subject_class):
    out = _random_outputs(1, 4, 3, 5, seed=1)
    tgt = _random_targets(3, 3, 5, seed=2, missing=(1,))
    m = HungarianMatcherHOI(subject_class=subject_class)
    c = m.cost_matrix(out, [tgt])
    assert c.shape == (4, 3)
    for q in range(4):
        for j in range(3):
            assert c[q, j].item() == pytest.approx(_loop_cost(out, tgt, 0, q, j, subject_class=subject_class), abs=1e-5)


def _brute_force(cost):
    q, p = cost.shape
    best = math.inf
    for perm in itertools.permutations(range(q), p):
        best = min(best, sum(cost[perm[j], j].item() for j in range(p)))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force(seed):
    n, q, k, r = 2, 5, 3, 4
    out = _random_outputs(n, q, k, r, seed)
    missing = (0,) if seed % 2 else ()
    targets = [_random_targets(3, k, r, seed + 100, missing=missing), _random_targets(2, k, r, seed + 200)]
    m = HungarianMatcherHOI(cost_bbox=2.5 + seed * 0.1)  # configurable weights
    indices = m(out, targets)
    full = m.cost_matrix(out, targets).view(n, q, -1)
    start = 0
    for b, ((rows, cols), t) in enumerate(zip(indices, targets)):
        p = len(t["obj_labels"])
        cost = full[b, :, start : start + p]
        start += p
        assert rows.dtype == torch.int64 and len(rows) == p and len(set(rows.tolist())) == p
        assert sorted(cols.tolist()) == list(range(p))
        got = sum(cost[i, j].item() for i, j in zip(rows.tolist(), cols.tolist()))
        assert got == pytest.approx(_brute_force(cost), abs=1e-5)


def test_obvious_assignment_and_edge_cases():
    out = _random_outputs(1, 3, 2, 2, seed=3)
    tgt = _random_targets(2, 2, 2, seed=4)
    # Make query 2 a perfect copy of target 0 and query 0 a perfect copy of target 1.
    for q, j in ((2, 0), (0, 1)):
        out["pred_sub_boxes"][0, q] = tgt["sub_boxes"][j]
        out["pred_obj_boxes"][0, q] = tgt["obj_boxes"][j]
        out["pred_obj_logits"][0, q] = -10.0
        out["pred_obj_logits"][0, q, tgt["obj_labels"][j]] = 10.0
        out["pred_sub_logits"][0, q] = -10.0
        out["pred_sub_logits"][0, q, tgt["sub_labels"][j]] = 10.0
        out["pred_verb_logits"][0, q] = (tgt["verb_labels"][j] * 2 - 1) * 10.0
    rows, cols = HungarianMatcherHOI()(out, [tgt])[0]
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 2, 1: 0}

    empty = {k: v[:0] for k, v in tgt.items()}
    rows, cols = HungarianMatcherHOI()(out, [empty])[0]
    assert rows.numel() == 0 and cols.numel() == 0

    bad = dict(tgt, verb_labels=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="relation columns"):
        HungarianMatcherHOI()(out, [bad])
    with pytest.raises(ValueError, match="all costs"):
        HungarianMatcherHOI(0, 0, 0, 0)
