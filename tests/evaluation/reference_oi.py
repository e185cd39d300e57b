"""Slow loop re-implementation of RLIPv2's Open Images evaluator (``oi_sgg_eval.py``) for cross-checks,
written from the protocol description, including the phrase-position quirk."""
from __future__ import annotations

from collections import defaultdict

import numpy as np


def _iou(g, p):
    area_g = (g[2] - g[0] + 1) * (g[3] - g[1] + 1)
    area_p = (p[2] - p[0] + 1) * (p[3] - p[1] + 1)
    lo_y, hi_y, lo_x, hi_x = max(g[1], p[1]), min(g[3], p[3]), max(g[0], p[0]), min(g[2], p[2])
    if lo_y >= hi_y or lo_x >= hi_x:
        return 0.0
    inter = (hi_y - lo_y + 1) * (hi_x - lo_x + 1)
    return float(inter / ((area_g + area_p) - inter))


def _nms_order(boxes_a, boxes_b, scores, thresh, alpha, beta):
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
        return w * h / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - w * h)

    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        order = [j for j in order if not (
            (iou(boxes_a[i], boxes_a[j]) ** alpha) * (iou(boxes_b[i], boxes_b[j]) ** beta if boxes_b else 1) > thresh)]
    return keep


def _ap11(rec, prec):
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        m = rec >= t
        ap = ap + (np.max(prec[m]) if m.any() else 0) / 11.0
    return ap


def reference_oi_rlipv2(preds, gts, top_k, nms=True):
    """preds: [{"boxes", "labels", "rel_scores", "sub_ids", "obj_ids"}]; gts: [{"boxes", "labels", "rels"}]."""
    gt_trip, sum_gts = [], defaultdict(int)
    for g in gts:
        for s, o, r in g["rels"]:
            t = (int(g["labels"][s]), int(g["labels"][o]), int(r))
            if t not in gt_trip:
                gt_trip.append(t)
            sum_gts[t] += 1
    tp, score, tp_p, score_p = (defaultdict(list) for _ in range(4))
    for pred, g in zip(preds, gts):
        b, lab = pred["boxes"], pred["labels"]
        cands = []
        for q in range(pred["rel_scores"].shape[0]):
            for r in range(pred["rel_scores"].shape[1]):
                cands.append({"s": int(pred["sub_ids"][q]), "o": int(pred["obj_ids"][q]), "r": r,
                              "score": pred["rel_scores"][q, r]})
        cands.sort(key=lambda c: c["score"], reverse=True)
        cands = cands[:top_k]
        trip = lambda c, lab=lab: (int(lab[c["s"]]), int(lab[c["o"]]), c["r"])  # noqa: E731
        if nms:
            groups = defaultdict(list)
            for i, c in enumerate(cands):
                groups[trip(c)].append(i)
            new = []
            for members in groups.values():
                k = _nms_order([b[cands[i]["s"]] for i in members], [b[cands[i]["o"]] for i in members],
                               [cands[i]["score"] for i in members], 0.7, 1.0, 0.5)
                new += [cands[members[j]] for j in k]
            cands = new
        phrases = []
        for c in cands:
            sb, ob = b[c["s"]], b[c["o"]]
            phrases.append({"box": np.array([min(sb[0], ob[0]), min(sb[1], ob[1]), max(sb[2], ob[2]),
                                             max(sb[3], ob[3])]), "cat": trip(c), "score": c["score"]})
        if nms:
            groups = defaultdict(list)
            for i, p in enumerate(phrases):
                groups[p["cat"]].append(i)
            new = []
            for members in groups.values():
                k = _nms_order([phrases[i]["box"] for i in members], None, [phrases[i]["score"] for i in members],
                               0.5, 1.0, 0.0)
                new += [phrases[members[j]] for j in k]
            phrases = new
        g_phr = []
        for s, o, r in g["rels"]:
            sb, ob = g["boxes"][s], g["boxes"][o]
            g_phr.append({"box": np.array([min(sb[0], ob[0]), min(sb[1], ob[1]), max(sb[2], ob[2]), max(sb[3], ob[3])]),
                          "cat": (int(g["labels"][s]), int(g["labels"][o]), int(r))})
        if len(g["boxes"]) == 0 or not cands:
            for p in phrases:
                if p["cat"] in gt_trip:
                    tp_p[p["cat"]].append(0)
                    score_p[p["cat"]].append(p["score"])
            continue
        # relations (QPIC matching)
        taken = [False] * len(g["rels"])
        for c in sorted(cands, key=lambda c: c["score"], reverse=True):
            best, bov = None, 0
            for h, (s, o, r) in enumerate(g["rels"]):
                if r != c["r"] or g["labels"][s] != lab[c["s"]] or g["labels"][o] != lab[c["o"]]:
                    continue
                a1, a2 = _iou(g["boxes"][s], b[c["s"]]), _iou(g["boxes"][o], b[c["o"]])
                if a1 >= 0.5 and a2 >= 0.5 and min(a1, a2) > bov:
                    best, bov = h, min(a1, a2)
            if trip(c) not in gt_trip:
                continue
            ok = best is not None and not taken[best]
            if ok:
                taken[best] = True
            tp[trip(c)].append(int(ok))
            score[trip(c)].append(c["score"])
        # phrases, with the position quirk: sorted rank k reads list position k's overlaps
        taken = [False] * len(g_phr)
        ordered = sorted(phrases, key=lambda p: p["score"], reverse=True)
        for k, p in enumerate(ordered):
            src = phrases[k]
            best, bov = None, 0
            for h, gp in enumerate(g_phr):
                if gp["cat"] != src["cat"]:
                    continue
                ov = _iou(gp["box"], src["box"])
                if ov >= 0.5 and ov > bov:
                    best, bov = h, ov
            if p["cat"] not in gt_trip:
                continue
            ok = best is not None and not taken[best]
            if ok:
                taken[best] = True
            tp_p[p["cat"]].append(int(ok))
            score_p[p["cat"]].append(p["score"])

    def summarise(tps, scs, phrase):
        ap, n_tp, n_gt = {}, 0, 0
        total = sum(sum_gts.values())
        for t in gt_trip:
            if not tps[t]:
                ap[t] = 0
                if not phrase:
                    n_gt += sum_gts[t]
                continue
            o = np.argsort(-np.array(scs[t]))
            c = np.cumsum(np.array(tps[t])[o])
            f = np.cumsum(1 - np.array(tps[t])[o])
            ap[t] = _ap11(c / sum_gts[t], c / (c + f))
            n_tp += c[-1]
            n_gt += sum_gts[t]
        return (float(np.mean(list(ap.values()))), sum([a * sum_gts[t] / total for t, a in ap.items()]), n_tp / n_gt)

    r = summarise(tp, score, False)
    p = summarise(tp_p, score_p, True)
    return {"mAP_rel": r[0], "wmAP_rel": r[1], "R_rel": r[2], "mAP_phr": p[0], "wmAP_phr": p[1], "R_phr": p[2]}
