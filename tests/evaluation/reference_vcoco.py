"""A slow, loop-for-loop re-implementation of s-gupta/v-coco ``vsrl_eval.py`` (for cross-checks), and a
synthetic V-COCO generator (files in the official formats) used by the tests and tools/benchmark_eval.py.

The reference follows the protocol description: per image, per action (and role), sort that image's
detections by score, match the person box to the best-IoU GT person, skip ignored persons, and decide
TP / FP with a per-person "covered" flag; AP is VOC all-point with float32 recall.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _overlap(boxes, ref):
    iw = np.maximum(np.minimum(boxes[:, 2], ref[2]) - np.maximum(boxes[:, 0], ref[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(boxes[:, 3], ref[3]) - np.maximum(boxes[:, 1], ref[1]) + 1.0, 0.0)
    inter = iw * ih
    return inter / ((ref[2] - ref[0] + 1.0) * (ref[3] - ref[1] + 1.0) + (boxes[:, 2] - boxes[:, 0] + 1.0) *
                    (boxes[:, 3] - boxes[:, 1] + 1.0) - inter)


def _voc_ap(rec, prec):
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])


def reference_vcoco(vcoco, coco, image_ids, dets, thresh=0.5):
    actions = [x["action_name"] for x in vcoco]
    roles = [x["role_name"] for x in vcoco]
    A = len(actions)
    person = coco["categories"][0]["id"]
    imgs = {im["id"]: im for im in coco["images"]}
    by_img = {}
    for ann in coco["annotations"]:
        by_img.setdefault(ann["image_id"], []).append(ann)
    annotated = set(vcoco[0]["ann_id"])
    db = []
    for iid in image_ids:
        im = imgs[iid]
        objs, boxes = [], []
        for ann in by_img.get(iid, []):
            if ann.get("ignore", 0) == 1:
                continue
            x, y, w, h = ann["bbox"]
            x2, y2 = x + max(0.0, w - 1.0), y + max(0.0, h - 1.0)
            cl = [min(im["width"] - 1.0, max(0.0, v)) if k % 2 == 0 else min(im["height"] - 1.0, max(0.0, v))
                  for k, v in enumerate([x, y, x2, y2])]
            if ann["area"] > 0 and cl[2] > cl[0] and cl[3] > cl[1]:
                objs.append(ann)
                boxes.append(cl)
        boxes = np.array(boxes, np.float32).reshape(-1, 4)
        persons = []
        for k, ann in enumerate(objs):
            if ann["category_id"] != person:
                continue
            acts = [-1] * A
            rboxes = [[None, None] for _ in range(A)]
            if ann["id"] in annotated:
                acts = [0] * A
                for a, x in enumerate(vcoco):
                    n = len(x["ann_id"])
                    rid = np.array(x["role_object_id"]).reshape(len(x["role_name"]), n).T
                    for t in range(n):
                        if x["ann_id"][t] == ann["id"] and x["label"][t] == 1:
                            acts[a] = 1
                            for j in range(1, rid.shape[1]):
                                if rid[t, j] != 0:
                                    kk = [o["id"] for o in objs].index(rid[t, j])
                                    rboxes[a][j - 1] = boxes[kk]
            persons.append((boxes[k], acts, rboxes))
        db.append((iid, persons))
    npos = np.zeros(A, np.float32)
    for _, persons in db:
        for _, acts, _ in persons:
            for a in range(A):
                npos[a] += acts[a] == 1

    def run(score_of, correct_of):
        tp, fp, sc = [], [], []
        for iid, persons in db:
            mine = [d for d in dets if d["image_id"] == iid]
            s = np.array([score_of(d) for d in mine], np.float32)
            ok = np.where(~np.isnan(s))[0]
            order = ok[np.argsort(s[ok], kind="stable")[::-1]]
            covered = [False] * len(persons)
            for j in order:
                d = mine[j]
                pbox = np.array(d["person_box"], np.float32)
                if not persons:
                    tp.append(0)
                    fp.append(1)
                    sc.append(s[j])
                    continue
                ov = _overlap(np.array([p[0] for p in persons]), pbox)
                jm = int(np.argmax(ov))
                if persons[jm][1][0] == -1:
                    continue
                sc.append(s[j])
                if ov[jm] >= thresh and correct_of(d, persons[jm]) and not covered[jm]:
                    covered[jm] = True
                    tp.append(1)
                    fp.append(0)
                else:
                    tp.append(0)
                    fp.append(1)
        return np.array(tp, np.float32), np.array(fp, np.float32), np.array(sc, np.float32)

    def ap(tp, fp, sc, n):
        if n == 0:
            return np.float32(np.nan)
        if len(sc) == 0:
            return np.float32(0.0)
        o = np.argsort(sc, kind="stable")[::-1]
        ctp, cfp = np.cumsum(tp[o]), np.cumsum(fp[o])
        rec = ctp / float(n)
        prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        return np.float32(_voc_ap(rec, prec))

    agent = np.zeros(A, np.float32)
    for a in range(A):
        agent[a] = ap(*run(lambda d, a=a: d[f"{actions[a]}_agent"], lambda d, p, a=a: p[1][a] == 1), npos[a])
    role = {1: np.full((A, 2), np.nan, np.float32), 2: np.full((A, 2), np.nan, np.float32)}
    for a in range(A):
        for r in range(len(roles[a]) - 1):
            key = f"{actions[a]}_{roles[a][r + 1]}"
            for scen in (1, 2):
                def correct(d, p, a=a, r=r, key=key, scen=scen):
                    if p[1][a] != 1:
                        return False
                    g = p[2][a][r]
                    box = np.array(d[key][:4], np.float32)
                    if g is None:
                        return scen == 2 or bool(np.all(box == 0) or np.all(np.isnan(box)))
                    return bool(_overlap(g[None], box)[0] >= 0.5)

                role[scen][a, r] = ap(*run(lambda d, key=key: d[key][4], correct), npos[a])
    pairs = [(a, r) for a in range(A) for r in range(len(roles[a]) - 1)]
    keep = [k for k, (a, r) in enumerate(pairs) if f"{actions[a]}-{roles[a][r + 1]}" != "point-instr"]
    flat = {s: np.array([role[s][a, r] for a, r in pairs], np.float32) for s in (1, 2)}
    return {"agent_mAP": float(np.nansum(agent) / np.float32(A)),
            "role_mAP_s1": float(np.nanmean(role[1])), "role_mAP_s2": float(np.nanmean(role[2])),
            "role_mAP_s1_24": float(np.nanmean(flat[1][keep])), "role_mAP_s2_24": float(np.nanmean(flat[2][keep]))}


def make_synthetic_vcoco(n_images, n_dets, seed=0, as_numpy=False):
    """(vcoco_test list, coco dict, image ids, detection dicts) in the official formats."""
    meta = json.loads((Path(__file__).resolve().parents[2] / "rlipv2" / "data" / "metadata" /
                       "vcoco_actions.json").read_text())
    acts = meta["actions"]
    rng = np.random.default_rng(seed)
    cats = [{"id": 1, "name": "person"}] + [{"id": c, "name": f"obj{c}"} for c in (2, 3, 5, 7)]
    images, anns, image_ids = [], [], []
    vc = [{"action_name": a["action"], "role_name": a["roles"], "ann_id": [], "label": [], "image_id": [],
           "role_object_id": [[] for _ in a["roles"]]} for a in acts]
    gt_info = {}
    aid = 1
    for i in range(n_images):
        iid = 1000 + i
        image_ids.append(iid)
        images.append({"id": iid, "width": 640, "height": 480})
        objs = []
        for _ in range(int(rng.integers(1, 4))):
            xy = rng.uniform(0, 400, 2)
            wh = rng.uniform(10, 150, 2)
            ann = {"id": aid, "image_id": iid, "category_id": int(rng.choice([2, 3, 5, 7])),
                   "bbox": [*xy.round(1).tolist(), *wh.round(1).tolist()], "area": float(wh.prod()), "iscrowd": 0}
            anns.append(ann)
            objs.append(ann)
            aid += 1
        persons = []
        for k in range(int(rng.integers(1, 4))):
            xy = rng.uniform(0, 400, 2)
            wh = rng.uniform(20, 200, 2)
            ann = {"id": aid, "image_id": iid, "category_id": 1, "bbox": [*xy.round(1).tolist(),
                   *wh.round(1).tolist()], "area": float(wh.prod()), "iscrowd": 0}
            if rng.random() < 0.05:
                ann["ignore"] = 1
            anns.append(ann)
            aid += 1
            if k == 0 or rng.random() < 0.85:  # annotated in V-COCO (every image has one)
                labels = {}
                for a, x in enumerate(vc):
                    lab = int(rng.random() < 0.15)
                    x["ann_id"].append(ann["id"])
                    x["label"].append(lab)
                    x["image_id"].append(iid)
                    x["role_object_id"][0].append(ann["id"])
                    for j in range(1, len(x["role_name"])):
                        has = lab and rng.random() < 0.8
                        o = objs[int(rng.integers(len(objs)))] if has else None
                        x["role_object_id"][j].append(o["id"] if o else 0)
                        if lab:
                            labels[(a, j)] = o
                    if lab:
                        labels[a] = True
                persons.append((ann, labels))
            else:
                persons.append((ann, None))
        gt_info[iid] = (persons, objs)
    for x in vc:
        x["role_object_id"] = [v for col in x["role_object_id"] for v in col]
    arrays = _synthetic_detection_arrays(rng, acts, image_ids, gt_info, n_dets)
    dets = None if as_numpy == "arrays" else arrays_to_dicts(arrays, acts, as_numpy=bool(as_numpy))
    coco = {"images": images, "annotations": anns, "categories": cats}
    if as_numpy == "arrays":
        return vc, coco, image_ids, arrays
    return vc, coco, image_ids, dets


def _synthetic_detection_arrays(rng, acts, image_ids, gt_info, n_dets):
    """Vectorised detections: dict of image_ids (D,), person_boxes (D, 4), agent_scores (D, 26),
    role_boxes (D, 25, 5), with boxes near GT persons / role objects, some role boxes zero or NaN."""
    pairs = [(a, j) for a, act in enumerate(acts) for j in range(1, len(act["roles"]))]
    img_col, pboxes, truth, role_src = [], [], [], []
    for iid in image_ids:
        persons, objs = gt_info[iid]
        pick = rng.integers(len(persons), size=n_dets)
        obj_boxes = np.array([[o["bbox"][0], o["bbox"][1], o["bbox"][0] + o["bbox"][2], o["bbox"][1] + o["bbox"][3]]
                              for o in objs])
        for k in pick.tolist():
            ann, labels = persons[k]
            x, y, w, h = ann["bbox"]
            pboxes.append([x, y, x + w, y + h])
            truth.append([bool(labels and labels.get(a)) for a in range(len(acts))])
            src = []
            for a, j in pairs:
                o = labels.get((a, j)) if labels else None
                src.append([o["bbox"][0], o["bbox"][1], o["bbox"][0] + o["bbox"][2], o["bbox"][1] + o["bbox"][3]]
                           if o is not None else obj_boxes[rng.integers(len(objs))])
            role_src.append(src)
        img_col += [iid] * n_dets
    d = len(img_col)
    pb = (np.asarray(pboxes) + rng.normal(0, 15, (d, 4))).astype(np.float32)
    pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2])
    truth = np.asarray(truth)
    agent = (rng.random((d, len(acts))) * np.where(truth, 1.0, 0.6)).astype(np.float32)
    rb = np.asarray(role_src, np.float64) + rng.normal(0, 15, (d, len(pairs), 4))
    r = rng.random((d, len(pairs)))
    rb[r < 0.1] = 0.0
    rb[(r >= 0.1) & (r < 0.2)] = np.nan
    pair_true = truth[:, [a for a, _ in pairs]]
    sc = rng.random((d, len(pairs))) * np.where(pair_true, 1.0, 0.6)
    roles = np.concatenate([rb, sc[..., None]], 2).astype(np.float32)
    return {"image_ids": np.asarray(img_col, np.int64), "person_boxes": pb, "agent_scores": agent,
            "role_boxes": roles}


def arrays_to_dicts(arrays, acts, as_numpy=False, images=None):
    """vsrl_eval's list of dicts from detection arrays (optionally only for the given image ids)."""
    pairs = [(a, j) for a, act in enumerate(acts) for j in range(1, len(act["roles"]))]
    keep = np.arange(len(arrays["image_ids"])) if images is None else \
        np.flatnonzero(np.isin(arrays["image_ids"], list(images)))
    out = []
    for i in keep.tolist():
        d = {"image_id": int(arrays["image_ids"][i]),
             "person_box": arrays["person_boxes"][i] if as_numpy else arrays["person_boxes"][i].tolist()}
        for a, act in enumerate(acts):
            s = arrays["agent_scores"][i, a]
            d[f"{act['action']}_agent"] = s if as_numpy else float(s)
        for k, (a, j) in enumerate(pairs):
            v = arrays["role_boxes"][i, k]
            d[f"{acts[a]['action']}_{acts[a]['roles'][j]}"] = v if as_numpy else v.tolist()
        out.append(d)
    return out
