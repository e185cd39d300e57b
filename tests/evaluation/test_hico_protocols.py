"""Hand-computed HICO-DET cases for the qpic and matlab protocols, and a randomised cross-check against
the slow loop-for-loop reference (reference_hico.py)."""
import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rlipv2.evaluation.ap import MATLAB_COLON_THRESHOLDS, NUMPY_ARANGE_THRESHOLDS, eleven_point_ap, voc_all_point_ap
from rlipv2.evaluation.boxes import iou_qpic, iou_voc
from rlipv2.evaluation.hico import score_hico
from rlipv2.evaluation.hico_core import (
    CandidateSelector,
    HOICandidates,
    HOIGroundTruth,
    select_triplet_candidates,
    topk_stable,
)

_spec = importlib.util.spec_from_file_location("reference_hico", Path(__file__).with_name("reference_hico.py"))
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

PERSON, CUP = 0, 1
HOLD, DRINK = 0, 1
# verbs x objects: hold-cup and drink-cup are the only valid classes
CM = np.array([[0, 1], [0, 1]], float)


def box(x1, y1, x2, y2):
    return [float(x1), float(y1), float(x2), float(y2)]


P = box(0, 0, 9, 9)
C = box(20, 0, 29, 9)


def image(name, boxes, labels, hois):
    return {"file_name": name, "boxes": np.array(boxes, float).reshape(-1, 4), "labels": labels, "hois": hois}


def run(gts, preds, protocol, cm=CM, top_k=100, offset=0.0, **kw):
    """preds[i] = list of (sub_box, obj_box, sub_label, obj_label, verb, score) for image i."""
    gt = HOIGroundTruth.from_images(gts, box_dtype=np.float32 if protocol == "qpic" else np.float64)
    parts = []
    for i, plist in enumerate(preds):
        if plist:
            sb, ob, sl, ol, v, s = zip(*plist)
            parts.append(select_triplet_candidates(i, sb, ob, sl, ol, v, np.array(s, np.float32), cm, top_k,
                                                   protocol))
    return score_hico(gt, HOICandidates.concatenate(parts), cm, protocol=protocol, pred_box_offset=offset, **kw)


def ap_of(result, obj, verb):
    k = [i for i, (s, o, v) in enumerate(result.classes.tolist()) if o == obj and v == verb]
    assert len(k) == 1
    return result.ap[k[0]], result.max_recall[k[0]]


def eleven(n_terms):
    ap = 0.0
    for _ in range(n_terms):
        ap = ap + 1.0 / 11.0
    return ap


# ------------------------------------------------------------------------------------------ primitives


def test_thresholds_differ_exactly_at_06_and_07():
    assert NUMPY_ARANGE_THRESHOLDS[6] > 0.6 and NUMPY_ARANGE_THRESHOLDS[7] > 0.7
    assert MATLAB_COLON_THRESHOLDS[6] == 0.6 and MATLAB_COLON_THRESHOLDS[7] == 0.7
    assert MATLAB_COLON_THRESHOLDS[3] == NUMPY_ARANGE_THRESHOLDS[3] == 0.30000000000000004
    rec, prec = np.array([0.2, 0.4, 0.6]), np.ones(3)
    assert eleven_point_ap(rec, prec, NUMPY_ARANGE_THRESHOLDS) == eleven(6)
    assert eleven_point_ap(rec, prec, MATLAB_COLON_THRESHOLDS) == eleven(7)


def test_voc_all_point_ap():
    # precision envelope: 1 up to recall 0.5, then 2/3 up to recall 1.0
    assert voc_all_point_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_iou_conventions_at_half():
    g = np.array([box(0, 0, 9, 9)])
    assert iou_qpic(g, np.array([box(0, 0, 9, 4)]))[0] == 0.5  # 50 / 100 with the +1 convention
    assert iou_voc(g, np.array([box(0, 0, 9, 4)]))[0] == 0.5
    assert iou_qpic(np.array([box(0, 0, 99, 99)]), np.array([box(0, 0, 99, 48)]))[0] == pytest.approx(0.49)
    # a one-pixel-thick intersection is 0 for the qpic port, not for MATLAB
    z = np.array([box(5, 5, 5, 5)])
    assert iou_qpic(z, z)[0] == 0 and iou_voc(z, z)[0] == 1


def test_topk_stable_ties_keep_column_order():
    s = np.array([[0.5, 0.9, 0.5, 0.5, 0.1, 0.5]], np.float32)
    np.testing.assert_array_equal(topk_stable(s, 3), [[1, 0, 2]])
    np.testing.assert_array_equal(topk_stable(s, 10), [[1, 0, 2, 3, 5, 4]])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (50, 40)).astype(np.float32)
    for k in (1, 7, 39):
        expect = np.argsort(-x, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(topk_stable(x, k), expect)


# ------------------------------------------------------------------------------------------ matching


@pytest.mark.parametrize("protocol", ["qpic", "matlab"])
def test_duplicate_detection_and_no_fallback_to_second_best(protocol):
    P2, C2 = box(0, 0, 9, 7), box(20, 0, 29, 7)  # IoU 0.8 with P / C
    gts = [image("a", [P, C, P2, C2], [PERSON, CUP, PERSON, CUP], [(0, 1, HOLD), (2, 3, HOLD)])]
    preds = [[(P, C, PERSON, CUP, HOLD, 0.9),  # TP on the first GT
              (P, C, PERSON, CUP, HOLD, 0.8)]]  # duplicate: its best GT is taken -> FP, the second GT stays free
    r = run(gts, preds, protocol)
    ap, mr = ap_of(r, CUP, HOLD)
    # rec [0.5, 0.5], prec [1, 0.5]: thresholds 0 .. 0.5 get precision 1
    assert ap == eleven(6) and mr == 0.5


@pytest.mark.parametrize("protocol", ["qpic", "matlab"])
def test_iou_exactly_half_matches_and_just_below_does_not(protocol):
    gts = [image("a", [P, C], [PERSON, CUP], [(0, 1, HOLD)]),
           image("b", [box(0, 0, 99, 99), C], [PERSON, CUP], [(0, 1, HOLD)])]
    preds = [[(box(0, 0, 9, 4), C, PERSON, CUP, HOLD, 0.9)],  # IoU_s = 0.5 exactly -> TP
             [(box(0, 0, 99, 48), C, PERSON, CUP, HOLD, 0.8)]]  # IoU_s = 0.49 -> FP
    ap, mr = ap_of(run(gts, preds, protocol), CUP, HOLD)
    assert mr == 0.5 and ap == eleven(6)  # rec [0.5, 0.5], prec [1, 0.5]


def _counting_case(n_gt, n_tp):
    """n_gt images with one GT each; detections: n_tp TPs (descending scores), then 2 FPs."""
    gts = [image(f"i{i}", [P, C], [PERSON, CUP], [(0, 1, HOLD)]) for i in range(n_gt)]
    preds = [[] for _ in range(n_gt)]
    for i in range(n_tp):
        preds[i].append((P, C, PERSON, CUP, HOLD, 0.9 - 0.01 * i))
    preds[0].append((box(50, 50, 60, 60), C, PERSON, CUP, HOLD, 0.1))
    preds[1].append((box(50, 50, 60, 60), C, PERSON, CUP, HOLD, 0.05))
    return gts, preds


@pytest.mark.parametrize("n_gt,n_tp,qpic_terms,matlab_terms", [
    (5, 3, 6, 7),  # recall 0.6 = 3/5: the 0.6 term only counts in MATLAB
    (10, 6, 6, 7),  # recall 0.6 = 6/10
    (10, 7, 7, 8),  # recall 0.7 = 7/10: the 0.7 term only counts in MATLAB
    (5, 4, 9, 9),  # recall 0.8: no difference
])
def test_recall_landing_on_06_07(n_gt, n_tp, qpic_terms, matlab_terms):
    gts, preds = _counting_case(n_gt, n_tp)
    ap_q, mr_q = ap_of(run(gts, preds, "qpic"), CUP, HOLD)
    ap_m, mr_m = ap_of(run(gts, preds, "matlab"), CUP, HOLD)
    assert ap_q == eleven(qpic_terms) and ap_m == eleven(matlab_terms)
    assert mr_q == mr_m == n_tp / n_gt


def test_images_without_ground_truth_qpic_vs_matlab():
    gts = [image("a", [P, C], [PERSON, CUP], [(0, 1, HOLD)]),
           image("no_boxes", [], [], np.zeros((0, 3), int)),
           image("boxes_no_hoi", [P, C], [PERSON, CUP], np.zeros((0, 3), int))]
    hit = (P, C, PERSON, CUP, HOLD, 0.5)
    preds = [[hit], [(P, C, PERSON, CUP, HOLD, 0.9)], []]
    # qpic: the prediction on the image without boxes is ignored -> AP 1
    assert ap_of(run(gts, preds, "qpic"), CUP, HOLD)[0] == eleven(11)
    # matlab: it is a FP ranked first -> prec [0, 0.5] at rec [0, 1]
    assert ap_of(run(gts, preds, "matlab"), CUP, HOLD)[0] == pytest.approx(eleven(11) * 0.5)
    # qpic: an image with boxes but no hoi does produce a FP
    preds = [[hit], [], [(P, C, PERSON, CUP, HOLD, 0.9)]]
    assert ap_of(run(gts, preds, "qpic"), CUP, HOLD)[0] == pytest.approx(eleven(11) * 0.5)


def test_triplets_absent_from_gt_and_classes_without_predictions():
    gts = [image("a", [P, C], [PERSON, CUP], [(0, 1, HOLD)])]
    preds = [[(P, C, PERSON, CUP, HOLD, 0.9),
              (P, C, PERSON, CUP, DRINK, 0.95),  # (person, cup, drink) is not a GT triplet
              (P, box(60, 0, 69, 9), CUP, CUP, HOLD, 0.97)]]  # (cup, cup, hold): not a GT triplet either
    q = run(gts, preds, "qpic")
    assert q.classes.tolist() == [[PERSON, CUP, HOLD]]  # the qpic classes are the GT triplets only
    assert q.summary["mAP"] == eleven(11)
    # matlab: classes are the correct-mat pairs; drink-cup has no GT and scores AP 0 in the mean; the
    # subject label is not compared, so (cup, cup, hold) is a hold-cup FP ranked first
    m = run(gts, preds, "matlab")
    assert ap_of(m, CUP, DRINK)[0] == 0
    assert ap_of(m, CUP, HOLD)[0] == pytest.approx(eleven(11) * 0.5)
    assert m.summary["mAP"] == pytest.approx(eleven(11) * 0.25)
    # a class without any prediction: AP 0, max recall 0
    gts.append(image("b", [P, C], [PERSON, CUP], [(0, 1, DRINK)]))
    q = run(gts, preds + [[]], "qpic")
    assert ap_of(q, CUP, DRINK) == (0.0, 0.0)
    assert q.summary["mAP"] == pytest.approx(0.5)


def test_matlab_plus_one_and_qpic_thin_intersection():
    g1 = box(1, 1, 10, 2)  # 1-based GT
    p0 = box(0, 0, 9, 1)  # the same box, 0-based
    gts = [image("a", [g1, C], [PERSON, CUP], [(0, 1, HOLD)])]
    preds = [[(p0, box(19, -1, 28, 8), PERSON, CUP, HOLD, 0.9)]]
    assert ap_of(run(gts, preds, "matlab", offset=1.0), CUP, HOLD)[0] == eleven(11)
    # qpic: the subject intersection is one pixel thick -> IoU 0 -> FP
    assert ap_of(run(gts, preds, "qpic"), CUP, HOLD)[0] == 0


def test_rare_split_from_training_counts_and_zero_shot():
    gts = [image("a", [P, C], [PERSON, CUP], [(0, 1, HOLD), (0, 1, DRINK)])]
    preds = [[(P, C, PERSON, CUP, HOLD, 0.9)]]
    counts = Counter({(PERSON, CUP, HOLD): 3, (PERSON, CUP, DRINK): 12})
    r = run(gts, preds, "qpic", train_counts=counts)
    assert r.summary["mAP_rare"] == eleven(11) and r.summary["mAP_non_rare"] == 0
    assert r.summary["mAP"] == pytest.approx(0.5)
    z = run(gts, preds, "qpic", zero_shot=([(DRINK, CUP)], None))
    assert z.summary["mAP_unseen"] == 0 and z.summary["mAP_seen"] == eleven(11)


def test_known_object_drops_detections_in_images_without_the_object():
    gts = [image("a", [P, C], [PERSON, CUP], [(0, 1, HOLD)]), image("b", [P], [PERSON], np.zeros((0, 3), int))]
    preds = [[(P, C, PERSON, CUP, HOLD, 0.5)], [(P, C, PERSON, CUP, HOLD, 0.9)]]
    assert ap_of(run(gts, preds, "matlab"), CUP, HOLD)[0] == pytest.approx(eleven(11) * 0.5)
    assert ap_of(run(gts, preds, "matlab", known_object=True), CUP, HOLD)[0] == eleven(11)


def test_top_k_cut_after_correct_mat():
    gts = [image("a", [P, C], [PERSON, CUP], [(0, 1, HOLD)])]
    sel = CandidateSelector(CM, top_k=1, protocol="qpic")
    # query 0 (object = cup): hold 0.3, drink 0.6; query 1 (object = person): invalid verbs scored 0.99
    boxes = np.array([P, P, C, P], np.float32)
    labels = np.array([PERSON, PERSON, CUP, PERSON])
    vs = np.array([[0.3, 0.6], [0.99, 0.99]], np.float32)
    sel.add(0, boxes, labels, vs, [0, 1], [2, 3])
    cand = sel.finish()
    assert cand.verbs.tolist() == [DRINK] and cand.scores.tolist() == [np.float32(0.6)]
    gt = HOIGroundTruth.from_images(gts)
    assert score_hico(gt, cand, CM).summary["mAP"] == 0  # the hold TP fell below the top-1 cut


# ------------------------------------------------------------------------------------------ cross-check


def _random_case(rng, n_img=25, O=4, V=3, Q=5):
    cm = (rng.random((V, O)) < 0.7).astype(float)
    cm[:, 0] = 1
    gts, preds = [], []
    for i in range(n_img):
        G = int(rng.integers(0, 5))
        xy = rng.integers(0, 40, (G, 2))
        b = np.concatenate([xy, xy + rng.integers(0, 30, (G, 2))], 1).astype(np.float32)
        lab = rng.integers(0, O, G)
        H = int(rng.integers(0, 4)) if G else 0
        hois = np.stack([rng.integers(0, G, H), rng.integers(0, G, H), rng.integers(0, V, H)], 1) if H else \
            np.zeros((0, 3), int)
        gts.append({"file_name": f"im{i}", "boxes": b, "labels": lab, "hois": hois})
        pb = np.zeros((2 * Q, 4), np.float32)
        pl = rng.integers(0, O, 2 * Q)
        for m in range(2 * Q):
            if G and rng.random() < 0.7:
                g = rng.integers(0, G)
                pb[m] = b[g] + rng.integers(-3, 4, 4)
                pl[m] = lab[g] if rng.random() < 0.8 else pl[m]
            else:
                xy = rng.integers(0, 40, 2)
                pb[m] = np.r_[xy, xy + rng.integers(0, 30, 2)]
            pb[m, 2:] = np.maximum(pb[m, 2:], pb[m, :2])
        vs = rng.random((Q, V)).astype(np.float32)
        if rng.random() < 0.5:
            vs = np.round(vs * 4) / 4  # ties
        preds.append({"boxes": pb, "labels": pl, "verb_scores": vs, "sub_ids": np.arange(Q),
                      "obj_ids": np.arange(Q, 2 * Q)})
    return cm, gts, preds


@pytest.mark.parametrize("seed", range(12))
def test_random_cases_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    cm, gts, preds = _random_case(rng)
    top_k = int(rng.choice([4, 8, 100]))
    counts = Counter()
    for g in gts:
        for s, o, v in g["hois"]:
            counts[(int(g["labels"][s]), int(g["labels"][o]), int(v))] += int(rng.integers(1, 15))
    for protocol in ("qpic", "matlab"):
        gt = HOIGroundTruth.from_images(gts, box_dtype=np.float32 if protocol == "qpic" else np.float64)
        sel = CandidateSelector(cm, top_k, protocol, chunk=4)
        for i, p in enumerate(preds):
            sel.add(i, p["boxes"], p["labels"], p["verb_scores"], p["sub_ids"], p["obj_ids"])
        fast = score_hico(gt, sel.finish(), cm, protocol=protocol, train_counts=counts).summary
        if protocol == "qpic":
            slow, _ = ref.reference_qpic(preds, gts, cm, [t for t, c in counts.items() if c < 10],
                                         [t for t, c in counts.items() if c >= 10], top_k=top_k)
        else:
            pc = Counter()
            for (_, o, v), c in counts.items():
                pc[(v, o)] += c
            rare = [(int(v), int(o)) for v, o in zip(*np.nonzero(cm)) if pc[(int(v), int(o))] < 10]
            slow, _ = ref.reference_matlab(preds, gts, cm, rare, top_k=top_k)
        for k in ("mAP", "mAP_rare", "mAP_non_rare", "mean_max_recall"):
            assert fast[k] == slow[k] or (np.isnan(fast[k]) and np.isnan(slow[k])), (protocol, k)


@pytest.mark.parametrize("seed", range(4))
def test_random_cases_with_nms_match_the_reference(seed):
    rng = np.random.default_rng(100 + seed)
    cm, gts, preds = _random_case(rng)
    for p in preds:  # distinct scores: NMS tie order is not part of the protocol
        p["verb_scores"] = rng.permutation(p["verb_scores"].size).reshape(p["verb_scores"].shape).astype(
            np.float32) / p["verb_scores"].size + 0.01
    gt = HOIGroundTruth.from_images(gts)
    sel = CandidateSelector(cm, 8, "qpic")
    for i, p in enumerate(preds):
        sel.add(i, p["boxes"], p["labels"], p["verb_scores"], p["sub_ids"], p["obj_ids"])
    fast = score_hico(gt, sel.finish(), cm, nms=True).summary
    slow, _ = ref.reference_qpic(preds, gts, cm, [], [], top_k=8, nms=(0.7, 1.0, 0.5))
    assert fast["mAP"] == slow["mAP"] and fast["mean_max_recall"] == slow["mean_max_recall"]
