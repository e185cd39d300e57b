"""Open Images v6 scene-graph scoring core: the ``rlipv2`` and ``gcl`` protocols.

Used by the CLI (``rlipv2.evaluation.oi``, which describes both protocols) and by ``OISGGEvaluator``
(``rlipv2.evaluation.sgg_evaluator``); it imports neither.
"""
from __future__ import annotations

import logging

import numpy as np

from ..schemas.oi import OI_SCHEMA
from ..schemas.predictions import check_npz_array
from .ap import NUMPY_ARANGE_THRESHOLDS, per_class_eleven_point_ap, voc_all_point_ap
from .boxes import iou_qpic, iou_voc
from .hico_core import (
    CandidateSelector,
    HOICandidates,
    HOIGroundTruth,
    apply_triplet_nms,
    evaluate_hoi,
    image_group_ids,
    key_segments,
    triplet_codes,
)
from .hico_io import IdMaps, NpzReader, load_json, prediction_image_indexer

logger = logging.getLogger(__name__)

__all__ = ["load_oi_gt", "load_oi_predictions", "select_oi_candidates", "evaluate_oi", "evaluate_oi_rlipv2",
           "evaluate_oi_gcl", "write_oi_reports"]


# --------------------------------------------------------------------------------------------- loading


def load_oi_gt(path, ids: IdMaps, box_dtype=np.float32, data=None) -> HOIGroundTruth:
    """OI_SGG_test.json (or its parsed ``data``) -> HOIGroundTruth (relations as 'hois')."""
    data = load_json(path) if data is None else data
    OI_SCHEMA.validate(data, str(path), {"object_ids": ids.obj_to_contig, "allow_outside_root": True,
                                         "predicate_ids": range(ids.num_verbs)}).raise_first()
    recs = [{"file_name": r["file_name"], "annotations": r.get("annotations", []),
             "hoi_annotation": r.get("rel_annotations", [])} for r in data]
    from .hico_io import _flatten_records

    names, nbox, nrel, boxes, labels, rels = _flatten_records(path, recs, ids, validate=False)  # checked above
    bo = np.concatenate(([0], np.cumsum(nbox)))
    ro = np.concatenate(([0], np.cumsum(nrel)))
    base = np.repeat(bo[:-1], nrel)
    from .boxes import check_boxes

    check_boxes(boxes, str(path))
    return HOIGroundTruth(list(names), bo, boxes.astype(box_dtype), labels, ro, rels[:, 0] + base, rels[:, 1] + base,
                          rels[:, 2].copy())


def load_oi_predictions(path, gt: HOIGroundTruth, ids: IdMaps, num_rels: int):
    """Per-image raw predictions from the .npz: list of (image index, boxes, labels, rel_scores, sub, obj)."""
    z = NpzReader(path)
    if "file_names" not in z:
        raise ValueError(f"{path}: missing key 'file_names'")
    out, checked = [], set()
    image_index = prediction_image_indexer(gt)
    for i, name in enumerate(str(n) for n in z["file_names"].tolist()):
        where = f"{path} image {i} ({name})"
        idx = image_index(name, where)
        try:
            b, lab, rs, s, o = (z[f"{k}_{i}"] for k in ("boxes", "labels", "rel_scores", "sub_ids", "obj_ids"))
        except KeyError as e:
            raise ValueError(f"{e.args[0]} (image {i})") from None
        for k, arr in zip(("boxes", "labels", "rel_scores", "sub_ids", "obj_ids"), (b, lab, rs, s, o)):
            sig = (k, arr.dtype.str, arr.ndim, arr.size == 0)
            if sig not in checked:  # dtype and rank: once per kind of array
                check_npz_array(f"{k}_{i}", arr, where)
                checked.add(sig)
        if rs.ndim != 2 or rs.shape[1] != num_rels:
            raise ValueError(f"{where}: rel_scores must have shape (Q, {num_rels}), got {rs.shape}")
        out.append((idx, b, ids.objects(lab, where), rs, s, o, where))
    return out


# ------------------------------------------------------------------------------------- rlipv2 protocol


def _phrase_nms(cand: HOICandidates, union: np.ndarray, num_objects: int, num_rels: int, thresh: float):
    """RLIPv2 ``phrase_nms_filter``: per image, per triplet group, greedy NMS on union boxes (+1 areas,
    suppress IoU > thresh); survivors regrouped in group order. ``cand`` is in the official grouped
    order (groups in first-appearance order, each in visiting order), so the survivors' positions in
    ascending order are that output order. One batched call for all images (IoU ** 1 * IoU ** 0 = IoU)."""
    from .nms import batched_triplet_nms

    groups = image_group_ids(cand.image, triplet_codes(cand, num_objects, num_rels))
    # in that grouped order, scores never increase inside a group: the faster NMS sort applies
    keep = batched_triplet_nms(union, union, cand.scores, groups, thresh, 1.0, 0.0, score_sorted=True)
    return np.flatnonzero(keep)


def _class_index(class_codes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Index of each code in ``class_codes`` (distinct), -1 where absent."""
    if len(class_codes) == 0 or len(codes) == 0:
        return np.full(len(codes), -1, np.int64)
    sorter = np.argsort(class_codes, kind="stable")
    pos = np.minimum(np.searchsorted(class_codes[sorter], codes), len(class_codes) - 1)
    return np.where(class_codes[sorter][pos] == codes, sorter[pos], -1)


def _phrase_scores(gt: HOIGroundTruth, cand: HOICandidates, union: np.ndarray, class_codes, O: int, R: int):
    """Phrase TP flags with the official position quirk; returns (class index, score, tp) of recorded phrases."""
    n = len(cand)
    code = (cand.sub_labels * O + cand.obj_labels) * R + cand.verbs
    cls = _class_index(np.asarray(class_codes, np.int64), code)
    # GT phrases
    g_img = np.repeat(np.arange(gt.num_images), np.diff(gt.hoi_offsets))
    gs, go = gt.boxes[gt.hoi_sub], gt.boxes[gt.hoi_obj]
    g_union = np.concatenate([np.minimum(gs[:, :2], go[:, :2]), np.maximum(gs[:, 2:], go[:, 2:])], 1)
    g_code = (gt.labels[gt.hoi_sub] * O + gt.labels[gt.hoi_obj]) * R + gt.hoi_verb
    # target of each list position: first max IoU (>= 0.5) GT phrase with the same triplet
    gkey = g_img * (O * O * R) + g_code
    gsort = np.argsort(gkey, kind="stable")
    gkey_sorted = gkey[gsort]
    ckey = cand.image * (O * O * R) + code
    lo, hi = key_segments(gkey_sorted, ckey)
    cnt = hi - lo
    pc = np.repeat(np.arange(n), cnt)
    ph = gsort[np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(len(pc))]
    ov = iou_qpic(g_union[ph], union[pc]).astype(np.float64)
    ok = ov >= 0.5
    pc, ph, ov = pc[ok], ph[ok], ov[ok]
    o = np.lexsort((ph, -ov, pc))
    pc, ph = pc[o], ph[o]
    first = np.r_[True, pc[1:] != pc[:-1]] if len(pc) else np.zeros(0, bool)
    target = np.full(n, -1, np.int64)
    target[pc[first]] = ph[first]
    # sorted order per image (stable, score descending); rank k reads list position k's target
    sorted_idx = np.lexsort((-cand.scores.astype(np.float64), cand.image))  # lexsort is stable
    has_boxes = np.diff(gt.box_offsets) > 0
    has_rels = np.diff(gt.hoi_offsets) > 0
    rec_cls = cls[sorted_idx]
    tgt = target.copy()
    tgt[~(has_boxes & has_rels)[cand.image]] = -1  # no GT phrases: every phrase is a FP
    recorded = rec_cls >= 0
    t = tgt[np.arange(n)][recorded]  # list position k pairs with sorted rank k (same image layout)
    tp = np.zeros(int(recorded.sum()), np.int64)
    hit = np.flatnonzero(t >= 0)
    _, fh = np.unique(t[hit], return_index=True)
    tp[hit[fh]] = 1
    return rec_cls[recorded], cand.scores[sorted_idx][recorded], tp


def _official_sums(ap, num_gt, num_tp, num_det, phrase: bool):
    total = int(num_gt.sum())
    # the official sum over classes, term by term (same products, same left-to-right Python sum)
    wmap = sum((np.asarray(ap, np.float64) * np.asarray(num_gt).astype(np.float64) / total).tolist()) if total \
        else float("nan")
    with_det = num_det > 0
    gts = int(num_gt[with_det].sum()) if phrase else total
    rec = int(num_tp[with_det].sum()) / gts if gts else float("nan")
    return {"mAP": float(np.mean(ap)) if len(ap) else float("nan"), "wmAP": float(wmap), "max_recall": rec}


def select_oi_candidates(raw, num_objects: int, num_rels: int, top_k: int) -> HOICandidates:
    """Top-k (pair, predicate) triplets of every image, in (image, rank) order."""
    sel = CandidateSelector(np.ones((num_rels, num_objects)), top_k, "qpic")
    for idx, b, lab, rs, s, o, where in raw:
        sel.add(idx, b, lab, rs, s, o, where=where)
    return sel.finish()


def _rank_in_image(image: np.ndarray) -> np.ndarray:
    if len(image) == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, image[1:] != image[:-1]])
    return np.arange(len(image)) - np.repeat(starts, np.diff(np.r_[starts, len(image)]))


def evaluate_oi_rlipv2(gt: HOIGroundTruth, raw, num_objects: int, num_rels: int, top_k: int = 100,
                       nms: bool = True, nms_thresh: float = 0.7, nms_alpha: float = 1.0, nms_beta: float = 0.5,
                       phr_nms_thresh: float = 0.5, candidates: HOICandidates | None = None,
                       phrases: bool = True) -> dict:
    """One run of RLIPv2's ``OISGGEvaluator`` at ``top_k``: relation and phrase mAP / wmAP / recall.

    ``phrases=False`` skips the phrase metrics (the top-50 run only contributes the relation R@50).
    ``candidates``: the top-k' selection (k' >= top_k) of ``select_oi_candidates`` to reuse (the top-k
    of each image is a prefix of its top-k', both being stable descending sorts); ``raw`` is then unused.
    """
    cand = candidates if candidates is not None else select_oi_candidates(raw, num_objects, num_rels, top_k)
    if candidates is not None:
        cand = cand.take(np.flatnonzero(_rank_in_image(cand.image) < top_k))
    if nms:
        cand = apply_triplet_nms(cand, num_objects, num_rels, nms_thresh, nms_alpha, nms_beta, grouped=True)
    rel = evaluate_hoi(gt, cand, num_objects, num_rels, protocol="qpic", keep_curves=False)
    r = _official_sums(rel.ap, rel.num_gt, rel.num_tp, rel.num_det, phrase=False)
    out = {f"mAP_rel@{top_k}": r["mAP"], f"wmAP_rel@{top_k}": r["wmAP"], f"R_rel@{top_k}": r["max_recall"]}
    if not phrases:
        return out
    union = np.concatenate([np.minimum(cand.sub_boxes[:, :2], cand.obj_boxes[:, :2]),
                            np.maximum(cand.sub_boxes[:, 2:], cand.obj_boxes[:, 2:])], 1)
    phr_cand, phr_union = cand, union
    if nms:
        keep = _phrase_nms(cand, union, num_objects, num_rels, phr_nms_thresh)
        phr_cand, phr_union = cand.take(keep), union[keep]
    class_codes = (rel.classes[:, 0] * num_objects + rel.classes[:, 1]) * num_rels + rel.classes[:, 2]
    cls, sc, tp = _phrase_scores(gt, phr_cand, phr_union, class_codes, num_objects, num_rels)
    K = len(class_codes)
    ndet_phr = np.bincount(cls, minlength=K) if len(cls) else np.zeros(K, np.int64)
    ntp_phr = np.bincount(cls, weights=tp, minlength=K).astype(np.int64) if len(cls) else np.zeros(K, np.int64)
    ap_phr, _, _ = per_class_eleven_point_ap(cls, sc, tp, rel.num_gt, NUMPY_ARANGE_THRESHOLDS)
    p = _official_sums(ap_phr, rel.num_gt, ntp_phr, ndet_phr, phrase=True)
    return {**out, f"mAP_phr@{top_k}": p["mAP"], f"wmAP_phr@{top_k}": p["wmAP"], f"R_phr@{top_k}": p["max_recall"],
            "num_classes": float(K),
            "_per_class": {"names": [f"{s_} {o_} {r_}" for s_, o_, r_ in rel.classes.tolist()],
                           "num_gt": rel.num_gt, "ap_rel": rel.ap, "ap_phr": ap_phr}}


# ----------------------------------------------------------------------------------------- gcl protocol


def evaluate_oi_gcl(gt: HOIGroundTruth, raw, num_rels: int, top_k: int = 100, prd_k: int = 2,
                    min_score: float = 1e-5) -> dict:
    """GCL / PySGG ``eval_rel_results``: R@50, per-predicate all-point AP (rel and phrase), wmAP, score_wtd."""
    dets = []  # per image: (image, sub_box, obj_box, sub_label, obj_label, predicate, score)
    for idx, b, lab, rs, s, o, where in raw:
        b = np.asarray(b, np.float64)
        rs = np.asarray(rs, np.float64)
        if not np.isfinite(rs).all():
            raise ValueError(f"predictions {where}: rel_scores contain NaN or inf")
        q = rs.shape[0]
        top_p = np.argsort(-rs, axis=1, kind="stable")[:, :prd_k]  # (Q, prd_k)
        sc = np.take_along_axis(rs, top_p, 1).reshape(-1)
        qq = np.repeat(np.arange(q), top_p.shape[1])
        order = np.argsort(-sc, kind="stable")[:top_k]
        order = order[sc[order] > min_score]
        qi = qq[order]
        dets.append((np.full(len(order), idx), b[s[qi]], b[o[qi]], lab[s[qi]], lab[o[qi]],
                     top_p.reshape(-1)[order], sc[order]))
    cat = [np.concatenate([d[k] for d in dets]) if dets else np.zeros(0) for k in range(7)]
    img, sb, ob, sl, ol, pr, sc = cat
    img, sl, ol, pr = (x.astype(np.int64) for x in (img, sl, ol, pr))
    sb, ob = sb.reshape(-1, 4), ob.reshape(-1, 4)
    g_img = np.repeat(np.arange(gt.num_images), np.diff(gt.hoi_offsets))
    gsb, gob = gt.boxes[gt.hoi_sub].astype(np.float64), gt.boxes[gt.hoi_obj].astype(np.float64)
    gsl, gol, gpr = gt.labels[gt.hoi_sub], gt.labels[gt.hoi_obj], gt.hoi_verb
    # candidate pairs: same image, predicate, subject and object labels
    O = int(max(gt.labels.max(initial=0), sl.max(initial=0), ol.max(initial=0))) + 1
    key = lambda i, s_, o_, p_: ((i * O + s_) * O + o_) * num_rels + p_  # noqa: E731
    gkey = key(g_img, gsl, gol, gpr)
    gsort = np.argsort(gkey, kind="stable")
    ck = key(img, sl, ol, pr)
    lo, hi = np.searchsorted(gkey[gsort], ck, "left"), np.searchsorted(gkey[gsort], ck, "right")
    cnt = hi - lo
    pc = np.repeat(np.arange(len(ck)), cnt)
    ph = gsort[np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(len(pc))]
    ious, iouo = iou_voc(gsb[ph], sb[pc]), iou_voc(gob[ph], ob[pc])
    # recall@K: a GT is hit by any top-K prediction with both IoUs >= 0.5
    out = {}
    rank = np.zeros(len(ck), np.int64)
    if len(img):
        starts = np.r_[0, np.flatnonzero(np.diff(img)) + 1]
        rank = np.arange(len(img)) - np.repeat(starts, np.diff(np.r_[starts, len(img)]))
    for k in (20, 50, 100):
        hit = (ious >= 0.5) & (iouo >= 0.5) & (rank[pc] < k)
        out[f"R@{k}"] = len(np.unique(ph[hit])) / max(len(gkey), 1)
    u_p = np.concatenate([np.minimum(sb[pc, :2], ob[pc, :2]), np.maximum(sb[pc, 2:], ob[pc, 2:])], 1)
    u_g = np.concatenate([np.minimum(gsb[ph, :2], gob[ph, :2]), np.maximum(gsb[ph, 2:], gob[ph, 2:])], 1)
    npos = np.bincount(gpr, minlength=num_rels)
    for kind, ov in (("rel", np.minimum(ious, iouo)), ("phr", iou_voc(u_g, u_p))):
        # per candidate: the GT of max overlap (first on ties), TP if > 0.5 and not yet taken (score order)
        o = np.lexsort((ph, -ov, pc))
        first = np.r_[True, pc[o][1:] != pc[o][:-1]] if len(o) else np.zeros(0, bool)
        best_c, best_h, best_ov = pc[o][first], ph[o][first], ov[o][first]
        target = np.full(len(ck), -1)
        good = best_ov > 0.5
        target[best_c[good]] = best_h[good]
        aps = np.full(num_rels, np.nan)
        for p in range(num_rels):
            if npos[p] == 0:
                continue
            idx = np.flatnonzero(pr == p)
            idx = idx[np.argsort(-sc[idx], kind="stable")]
            t = target[idx]
            tp = np.zeros(len(idx), np.int64)
            h = np.flatnonzero(t >= 0)
            _, f = np.unique(t[h], return_index=True)
            tp[h[f]] = 1
            ctp = np.cumsum(tp)
            rec = ctp / npos[p]
            prec = ctp / np.maximum(np.arange(1, len(tp) + 1), np.finfo(np.float64).eps)
            aps[p] = voc_all_point_ap(rec, prec) if len(tp) else 0.0
        valid = npos > 0
        out[f"mAP_{kind}"] = float(np.mean(aps[valid])) if valid.any() else float("nan")
        out[f"wmAP_{kind}"] = float(np.sum(aps[valid] * npos[valid]) / npos[valid].sum()) if valid.any() else \
            float("nan")
        out[f"AP_{kind}_per_predicate"] = aps
    out["score_wtd"] = 0.2 * out["R@50"] + 0.4 * out["wmAP_rel"] + 0.4 * out["wmAP_phr"]
    out["final_score"] = 0.2 * out["R@50"] + 0.4 * out["mAP_rel"] + 0.4 * out["mAP_phr"]
    return out


def evaluate_oi(gt, raw, num_objects, num_rels, protocol="rlipv2", nms=True) -> dict:
    """Both protocols behind one call; returns {"oi": {...floats}}."""
    if protocol == "rlipv2":
        top100 = select_oi_candidates(raw, num_objects, num_rels, 100)  # the top-50 run reads its prefix
        r100 = evaluate_oi_rlipv2(gt, raw, num_objects, num_rels, 100, nms, candidates=top100)
        r50 = evaluate_oi_rlipv2(gt, raw, num_objects, num_rels, 50, nms, candidates=top100, phrases=False)
        res = {"R@50": r50["R_rel@50"], "wmAP_rel": r100["wmAP_rel@100"], "wmAP_phr": r100["wmAP_phr@100"],
               "mAP_rel": r100["mAP_rel@100"], "mAP_phr": r100["mAP_phr@100"], "R@100": r100["R_rel@100"],
               "R_phr@100": r100["R_phr@100"], "num_classes": r100["num_classes"]}
        res["score_wtd"] = 0.2 * res["R@50"] + 0.4 * res["wmAP_rel"] + 0.4 * res["wmAP_phr"]
        res["score_wtd_mAP"] = 0.2 * res["R@50"] + 0.4 * res["mAP_rel"] + 0.4 * res["mAP_phr"]
        return {"oi": res, "per_class": r100["_per_class"]}
    if protocol == "gcl":
        res = evaluate_oi_gcl(gt, raw, num_rels)
        npos = np.bincount(gt.hoi_verb, minlength=num_rels)
        per_class = {"names": [str(p) for p in range(num_rels)], "num_gt": npos, "ap_rel": res["AP_rel_per_predicate"],
                     "ap_phr": res["AP_phr_per_predicate"]}
        return {"oi": {k: float(v) for k, v in res.items() if not isinstance(v, np.ndarray)}, "per_class": per_class}
    raise ValueError(f"protocol must be 'rlipv2' or 'gcl', got {protocol!r}")


def write_oi_reports(output_dir, per_class: dict, protocol: str, class_names=None) -> None:
    """Per-class (triplet for rlipv2, predicate for gcl) AP table and plot (AP against test GT count)."""
    from pathlib import Path

    from .plots import plot_per_class, write_per_class_csv

    names = class_names or per_class["names"]
    rows = [{"class": n, "num_gt": int(g), "ap_rel": float(a), "ap_phr": float(b)}
            for n, g, a, b in zip(names, per_class["num_gt"], per_class["ap_rel"], per_class["ap_phr"])]
    out = Path(output_dir)
    write_per_class_csv(out / "oi_per_class_ap.csv", rows, ["class", "num_gt", "ap_rel", "ap_phr"])
    plot_per_class(out / "oi_per_class_ap.png", list(names), np.asarray(per_class["ap_rel"], float),
                   np.asarray(per_class["num_gt"]), {}, title=f"{protocol} protocol, x: test GT count")
