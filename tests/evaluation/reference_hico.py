"""Slow, loop-for-loop re-implementations of the two official HICO-DET evaluation algorithms.

Written from the protocol descriptions (evaluation_protocols.md) to cross-check the vectorised core:
- ``reference_qpic``: the QPIC / RLIPv2 ``hico_eval.py`` loop (Python dicts, per-prediction scans);
- ``reference_matlab``: ywchao/ho-rcnn ``VOCevaldet_bboxpair.m`` (per class, per detection scans).
Inputs are plain numpy: preds = [{"boxes", "labels", "verb_scores", "sub_ids", "obj_ids"}],
gts = [{"boxes", "labels", "hois" (s, o, v)}], contiguous ids. No vectorisation on purpose.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np


def _iou_qpic_scalar(g, p):
    area_g = (g[2] - g[0] + 1) * (g[3] - g[1] + 1)
    area_p = (p[2] - p[0] + 1) * (p[3] - p[1] + 1)
    y_lo, y_hi = max(g[1], p[1]), min(g[3], p[3])
    x_lo, x_hi = max(g[0], p[0]), min(g[2], p[2])
    if y_lo >= y_hi or x_lo >= x_hi:
        return 0
    inter = (y_hi - y_lo + 1) * (x_hi - x_lo + 1)
    return inter / ((area_g + area_p) - inter)


def _ap11(rec, prec, thresholds):
    ap = 0.0
    for t in thresholds:
        sel = prec[rec >= t]
        ap = ap + (np.max(sel) if sel.size else 0) / 11.0
    return ap


def _pairwise_nms_loop(subs, objs, scores, thresh, alpha, beta):
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
        inter = iw * ih
        return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)

    remaining = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    while remaining:
        i = remaining.pop(0)
        keep.append(i)
        remaining = [j for j in remaining
                     if not (iou(subs[i], subs[j]) ** alpha * iou(objs[i], objs[j]) ** beta > thresh)]
    return keep


def _top_candidates(pred, correct_mat, top_k, only_valid):
    labels = pred["labels"]
    cands = []
    for q in range(pred["verb_scores"].shape[0]):
        s_id, o_id = int(pred["sub_ids"][q]), int(pred["obj_ids"][q])
        for v in range(pred["verb_scores"].shape[1]):
            valid = correct_mat[v, labels[o_id]]
            if only_valid and not valid:
                continue
            cands.append({"s": s_id, "o": o_id, "v": v, "score": pred["verb_scores"][q, v] * valid})
    cands.sort(key=lambda c: c["score"], reverse=True)
    return cands[:top_k] if top_k > 0 else cands


def reference_qpic(preds, gts, correct_mat, rare_triplets, nonrare_triplets, top_k=100, nms=None):
    """The official Python algorithm. Returns (summary dict, {triplet: ap})."""
    gt_triplets, sum_gts = [], defaultdict(int)
    for g in gts:
        for s, o, v in g["hois"]:
            t = (int(g["labels"][s]), int(g["labels"][o]), int(v))
            if t not in gt_triplets:
                gt_triplets.append(t)
            sum_gts[t] += 1
    tps, fps, scores = defaultdict(list), defaultdict(list), defaultdict(list)
    for pred, g in zip(preds, gts):
        cands = _top_candidates(pred, correct_mat, top_k, only_valid=False)
        boxes, labels = pred["boxes"], pred["labels"]
        if nms is not None and cands:
            groups = defaultdict(list)
            for i, c in enumerate(cands):
                groups[(int(labels[c["s"]]), int(labels[c["o"]]), c["v"])].append(i)
            kept = []
            for members in groups.values():
                k = _pairwise_nms_loop([boxes[cands[i]["s"]] for i in members], [boxes[cands[i]["o"]] for i in members],
                                       [cands[i]["score"] for i in members], *nms)
                kept.extend(members[j] for j in k)
            cands = [cands[i] for i in sorted(kept)]
        if len(g["boxes"]) == 0 or not cands:
            continue  # predictions on images without GT boxes are never counted
        cands.sort(key=lambda c: c["score"], reverse=True)
        taken = [False] * len(g["hois"])
        for c in cands:
            t = (int(labels[c["s"]]), int(labels[c["o"]]), c["v"])
            best, best_ov = None, 0
            for h, (s, o, v) in enumerate(g["hois"]):
                if v != c["v"] or g["labels"][s] != labels[c["s"]] or g["labels"][o] != labels[c["o"]]:
                    continue
                ov_s = float(_iou_qpic_scalar(g["boxes"][s], boxes[c["s"]]))
                ov_o = float(_iou_qpic_scalar(g["boxes"][o], boxes[c["o"]]))
                if ov_s >= 0.5 and ov_o >= 0.5 and min(ov_s, ov_o) > best_ov:
                    best, best_ov = h, min(ov_s, ov_o)
            if t not in gt_triplets:
                continue
            ok = best is not None and not taken[best]
            if ok:
                taken[best] = True
            tps[t].append(int(ok))
            fps[t].append(int(not ok))
            scores[t].append(c["score"])
    ap, max_rec = {}, {}
    thresholds = np.arange(0.0, 1.1, 0.1)
    for t in gt_triplets:
        if not tps[t]:
            ap[t], max_rec[t] = 0, 0
            continue
        order = np.argsort(-np.array(scores[t]))
        tp = np.cumsum(np.array(tps[t])[order])
        fp = np.cumsum(np.array(fps[t])[order])
        rec = tp / sum_gts[t]
        prec = tp / (fp + tp)
        ap[t] = _ap11(rec, prec, thresholds)
        max_rec[t] = np.amax(rec)
    rare = [ap[t] for t in gt_triplets if t in set(rare_triplets)]
    non = [ap[t] for t in gt_triplets if t not in set(rare_triplets) and t in set(nonrare_triplets)]
    summary = {"mAP": float(np.mean(list(ap.values()))),
               "mAP_rare": float(np.mean(rare)) if rare else float("nan"),
               "mAP_non_rare": float(np.mean(non)) if non else float("nan"),
               "mean_max_recall": float(np.mean(list(max_rec.values())))}
    return summary, ap


def reference_matlab(preds, gts, correct_mat, rare_pairs, top_k=100, pred_offset=1.0):
    """VOCevaldet_bboxpair per (object, verb) class. Returns (summary dict, {(verb, obj): ap})."""
    colon = [k * 0.1 if k <= 5 else 1.0 - (10 - k) * 0.1 for k in range(11)]
    classes = sorted(((int(v), int(o)) for v, o in zip(*np.nonzero(correct_mat))), key=lambda p: (p[1], p[0]))
    dets = defaultdict(list)  # class -> [(image, sub box, obj box, score)] in (image, rank) order
    for i, pred in enumerate(preds):
        for c in _top_candidates(pred, correct_mat, top_k, only_valid=True):
            o_lab = int(pred["labels"][c["o"]])
            dets[(c["v"], o_lab)].append((i, np.asarray(pred["boxes"][c["s"]], float) + pred_offset,
                                          np.asarray(pred["boxes"][c["o"]], float) + pred_offset, c["score"]))

    def ov(a, b):
        iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
        ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
        if iw > 0 and ih > 0:
            return iw * ih / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - iw * ih)
        return 0.0

    aps, recs = {}, {}
    for cls in classes:
        v_c, o_c = cls
        gt_pairs = defaultdict(list)
        npos = 0
        for i, g in enumerate(gts):
            for s, o, v in g["hois"]:
                if v == v_c and g["labels"][o] == o_c:
                    gt_pairs[i].append((np.asarray(g["boxes"][s], float), np.asarray(g["boxes"][o], float)))
                    npos += 1
        det = dets[cls]
        order = sorted(range(len(det)), key=lambda d: -det[d][3])  # stable
        used = {i: [False] * len(p) for i, p in gt_pairs.items()}
        tp, fp = [], []
        for d in order:
            i, sb, ob, _ = det[d]
            best, jbest = -np.inf, None
            for j, (gs, go) in enumerate(gt_pairs.get(i, [])):
                m = min(ov(sb, gs), ov(ob, go))
                if m > best:
                    best, jbest = m, j
            if best >= 0.5 and not used[i][jbest]:
                used[i][jbest] = True
                tp.append(1)
                fp.append(0)
            else:
                tp.append(0)
                fp.append(1)
        if not det:
            aps[cls], recs[cls] = 0.0, 0.0
            continue
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)
        with np.errstate(invalid="ignore", divide="ignore"):
            rec = ctp / npos
        prec = ctp / (cfp + ctp)
        aps[cls] = _ap11(rec, prec, colon)
        recs[cls] = float(rec[-1]) if npos else 0.0
    rare = [aps[c] for c in classes if c in set(rare_pairs)]
    non = [aps[c] for c in classes if c not in set(rare_pairs)]
    summary = {"mAP": float(np.mean([aps[c] for c in classes])),
               "mAP_rare": float(np.mean(rare)) if rare else float("nan"),
               "mAP_non_rare": float(np.mean(non)) if non else float("nan"),
               "mean_max_recall": float(np.mean([recs[c] for c in classes]))}
    return summary, aps
