"""V-COCO scoring core: s-gupta/v-coco ``vsrl_eval.py`` reproduced with array code.

Used by the CLI (``rlipv2.evaluation.vcoco``) and the Detectron2 ``VCOCOEvaluator``
(``rlipv2.evaluation.vcoco_evaluator``); it imports neither.

What is reproduced (``vsrl_eval._do_eval``):
- GT: COCO boxes as inclusive xyxy (x2 = x1 + max(0, w - 1)), clipped to the image, dropping ``ignore``
  objects, zero-area and degenerate boxes; persons are the first COCO category; persons without a
  V-COCO annotation are *ignored* (a detection whose best-IoU person is one of them is skipped).
- Each detection's person box is matched to the GT person of largest IoU over all persons of its image
  (+1 convention, float32 as in the original); TP needs the action, IoU >= 0.5 and (roles) a role IoU
  >= 0.5, with Scenario 1 (a missing GT role needs an all-zero or NaN predicted role box) or Scenario 2
  (a missing GT role always counts as correct); one TP per GT person, no fallback.
- VOC all-point AP with recall in float32; agent AP averaged as nansum / 26; role AP as the nanmean over
  the 25 action-role pairs (what vsrl_eval prints) and over the 24 pairs without ``point-instr``
  (what papers report).
Where vsrl_eval crashes (an action without positives, an action without any scored detection, an image
with detections but no valid GT person), this module does not: AP is NaN (no positive) or 0 (no
detection), detections in images without persons are false positives, and the cases are reported in
``notes``. Ties between equal scores are ordered as vsrl_eval orders them: by NumPy's own (unstable)
``argsort()[::-1]``, called on the same float32 arrays in the same order (each image's scores in detection
order; each class's appended scores), so the metrics are identical to the original's on the same NumPy.
Detections are indexed by image once (O(total)), instead of one scan of the whole list per image.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from ..schemas.vcoco import check_coco_instances, check_detection_ids, check_vcoco_actions
from .ap import voc_all_point_ap
from .hico_io import NpzReader, load_json

logger = logging.getLogger(__name__)

__all__ = ["VCOCOGroundTruth", "VCOCODetections", "load_vcoco_gt", "load_detections", "detections_from_dicts",
           "evaluate_vcoco", "write_vcoco_reports"]


@dataclass
class VCOCOGroundTruth:
    """V-COCO test ground truth, one entry per GT person (persons of all images, in split order).

    actions: A action names; roles: per action its role names (``roles[a][0] == "agent"``);
    image_ids: (N,) COCO ids in split order; person_offsets: (N + 1,);
    person_boxes: (P, 4) float32; person_actions: (P, A) int (1 / 0, -1 = not annotated -> ignored);
    role_boxes: (P, A, 2, 4) float32, -1 where the person has no role object.
    """

    actions: list
    roles: list
    image_ids: np.ndarray
    person_offsets: np.ndarray
    person_boxes: np.ndarray
    person_actions: np.ndarray
    role_boxes: np.ndarray

    @property
    def pairs(self):
        """The (action index, role index) pairs with a role AP, in vsrl_eval's print order."""
        return [(a, r) for a in range(len(self.actions)) for r in range(len(self.roles[a]) - 1)]

    def pair_name(self, a, r):
        return f"{self.actions[a]}-{self.roles[a][r + 1]}"


def _clean_box(bbox, width, height):
    """COCO xywh -> inclusive xyxy clipped to the image (vsrl_eval's float64 arithmetic, in Python floats)."""
    x1, y1 = float(bbox[0]), float(bbox[1])
    x2 = x1 + max(0.0, float(bbox[2]) - 1.0)
    y2 = y1 + max(0.0, float(bbox[3]) - 1.0)
    w1, h1 = width - 1.0, height - 1.0
    return min(w1, max(0.0, x1)), min(h1, max(0.0, y1)), min(w1, max(0.0, x2)), min(h1, max(0.0, y2))


def load_vcoco_gt(vcoco_json, coco_json, ids_file) -> VCOCOGroundTruth:
    """Build the GT from vcoco_test.json, instances_vcoco_all_2014.json and vcoco_test.ids."""
    vcoco = check_vcoco_actions(load_json(vcoco_json), str(vcoco_json))  # rules: rlipv2.schemas.vcoco
    coco = check_coco_instances(load_json(coco_json) if not isinstance(coco_json, dict) else coco_json,
                                str(coco_json) if not isinstance(coco_json, dict) else "COCO instances")
    try:
        raw_ids = np.loadtxt(ids_file, ndmin=1)
    except ValueError as e:
        raise ValueError(f"{ids_file}: expected one integer image id per line ({e})") from None
    if raw_ids.ndim != 1 or not np.all(np.isfinite(raw_ids)) or np.any(raw_ids != np.round(raw_ids)):
        raise ValueError(f"{ids_file}: expected one integer image id per line")
    image_ids = raw_ids.astype(np.int64)
    actions = [x["action_name"] for x in vcoco]
    roles = [list(x["role_name"]) for x in vcoco]
    n_act = len(actions)
    annotated = set(int(i) for i in vcoco[0]["ann_id"])
    labelled = []  # per action: ann_id -> role object ids (len(roles) - 1)
    for a, x in enumerate(vcoco):
        ann = np.asarray(x["ann_id"]).reshape(-1)
        lab = np.asarray(x["label"]).reshape(-1)
        rid = np.asarray(x["role_object_id"]).reshape(len(x["role_name"]), -1).T
        d = {}
        for k in np.nonzero(lab == 1)[0]:
            if int(ann[k]) in d:
                raise ValueError(f"{vcoco_json}: action {actions[a]} labels annotation {ann[k]} twice")
            d[int(ann[k])] = rid[k, 1:]
        labelled.append(d)
    split_ids = set(int(i) for x in vcoco for i in np.asarray(x["image_id"]).reshape(-1))
    if split_ids != set(image_ids.tolist()):
        raise ValueError(f"{ids_file}: image ids differ from the ones in {vcoco_json}")
    images = {int(im["id"]): im for im in coco["images"]}
    person_cat = coco["categories"][0]["id"]
    anns_by_img = {}
    for ann in coco["annotations"]:
        anns_by_img.setdefault(int(ann["image_id"]), []).append(ann)
    offsets, boxes, acts, rboxes = [0], [], [], []
    for img_id in image_ids.tolist():
        if img_id not in images:
            raise ValueError(f"{coco_json}: image {img_id} of the split is missing")
        im = images[img_id]
        valid, vboxes = [], []
        for ann in anns_by_img.get(img_id, []):
            if ann.get("ignore", 0) == 1:
                continue
            x1, y1, x2, y2 = _clean_box(ann["bbox"], im["width"], im["height"])
            if ann["area"] > 0 and x2 > x1 and y2 > y1:
                valid.append(ann)
                vboxes.append([x1, y1, x2, y2])
        vboxes = np.asarray(vboxes, np.float32).reshape(-1, 4)
        index = {int(a["id"]): k for k, a in enumerate(valid)}
        n_pers = 0
        for k, ann in enumerate(valid):
            if ann["category_id"] != person_cat:
                continue
            n_pers += 1
            boxes.append(vboxes[k])
            act = -np.ones(n_act, np.int64)
            rb = -np.ones((n_act, 2, 4), np.float32)
            aid = int(ann["id"])
            if aid in annotated:
                act[:] = 0
                for a in range(n_act):
                    rid = labelled[a].get(aid)
                    if rid is None:
                        continue
                    act[a] = 1
                    for j, obj_id in enumerate(rid.tolist()):
                        if obj_id == 0:
                            continue
                        if int(obj_id) not in index:
                            raise ValueError(f"{vcoco_json}: role object {obj_id} of annotation {aid} "
                                             f"({actions[a]}) is not a valid box of image {img_id}")
                        rb[a, j] = vboxes[index[int(obj_id)]]
            acts.append(act)
            rboxes.append(rb)
        offsets.append(offsets[-1] + n_pers)
    return VCOCOGroundTruth(actions, roles, image_ids, np.asarray(offsets, np.int64),
                            np.asarray(boxes, np.float32).reshape(-1, 4),
                            np.asarray(acts, np.int64).reshape(-1, n_act),
                            np.asarray(rboxes, np.float32).reshape(-1, n_act, 2, 4))


@dataclass
class VCOCODetections:
    """Detections in arrays: image_ids (D,), person_boxes (D, 4) f32, agent_scores (D, A) f32,
    role_boxes (D, n_pairs, 5) f32 (x1, y1, x2, y2, score) in ``gt.pairs`` order."""

    image_ids: np.ndarray
    person_boxes: np.ndarray
    agent_scores: np.ndarray
    role_boxes: np.ndarray


def detections_from_dicts(dets, gt: VCOCOGroundTruth, where: str = "detections") -> VCOCODetections:
    """Convert vsrl_eval's list of dicts (``image_id``, ``person_box``, ``<action>_agent`` scores and
    ``<action>_<role>`` [x1, y1, x2, y2, score]) into arrays, one key at a time."""
    check_detection_ids(dets, where)  # a list of dicts with integer image ids (rlipv2.schemas.vcoco)
    n = len(dets)
    chain = itertools.chain.from_iterable

    def column(key, width):
        try:
            if width == 1:
                arr = np.fromiter((d[key] for d in dets), np.float32, count=n)
            else:
                arr = np.fromiter(chain(d[key] for d in dets), np.float32, count=n * width).reshape(n, width)
        except KeyError:
            i = next(k for k, d in enumerate(dets) if key not in d)
            raise ValueError(f"{where}: detection {i} has no key {key!r}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: key {key!r} must be a number / {width} numbers in every detection ({e})") \
                from None
        return arr

    try:
        image_ids = np.fromiter((d["image_id"] for d in dets), np.int64, count=n)
    except KeyError:
        raise ValueError(f"{where}: a detection has no 'image_id'") from None
    agent = np.stack([column(f"{a}_agent", 1) for a in gt.actions], 1) if n else np.zeros((0, len(gt.actions)))
    roles = [column(f"{gt.actions[a]}_{gt.roles[a][r + 1]}", 5) for a, r in gt.pairs]
    role_boxes = np.stack(roles, 1) if n else np.zeros((0, len(gt.pairs), 5), np.float32)
    return VCOCODetections(image_ids, column("person_box", 4) if n else np.zeros((0, 4), np.float32),
                           agent.astype(np.float32), role_boxes.astype(np.float32))


def load_detections(path, gt: VCOCOGroundTruth, allow_pickle: bool = False) -> VCOCODetections:
    """Read DETS.json / DETS.pkl (vsrl_eval's list of dicts; pickles only with allow_pickle) or DETS.npz
    (``image_ids``, ``person_boxes``, ``agent_scores`` (D, 26), ``role_boxes`` (D, 25, 5))."""
    path = str(path)
    if path.endswith(".npz"):
        z = NpzReader(path)
        try:
            out = VCOCODetections(*(np.array(z[k]) for k in ("image_ids", "person_boxes", "agent_scores",
                                                             "role_boxes")))
        except KeyError as e:
            raise ValueError(f"{path}: {e.args[0]}") from None
        z.close()
        for k, kinds in (("image_ids", "iu"), ("person_boxes", "fiu"), ("agent_scores", "f"), ("role_boxes", "f")):
            if getattr(out, k).dtype.kind not in kinds:
                raise ValueError(f"{path}: {k} must be {'an integer' if kinds == 'iu' else 'a numeric'} array, "
                                 f"got dtype {getattr(out, k).dtype}")
        out.image_ids = out.image_ids.astype(np.int64)
        return out
    if path.endswith(".json"):
        return detections_from_dicts(load_json(path), gt, path)
    if path.endswith((".pkl", ".pickle")):
        if not allow_pickle:
            raise ValueError(f"{path}: refusing to load a pickle (it can run code); pass --allow-pickle if you "
                             "trust the file")
        from rlipv2.engine.checkpoint import safe_pickle_load

        with open(path, "rb") as f:  # restricted unpickler: numpy arrays and containers only, never code
            return detections_from_dicts(safe_pickle_load(f, name=path), gt, path)
    raise ValueError(f"{path}: detections must be .json, .pkl or .npz")


def _overlaps(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """vsrl_eval ``get_overlap`` element-wise (gt, pred (N, 4) float32) -> (N,) float32."""
    iw = np.maximum(np.minimum(gt[:, 2], pred[:, 2]) - np.maximum(gt[:, 0], pred[:, 0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(gt[:, 3], pred[:, 3]) - np.maximum(gt[:, 1], pred[:, 1]) + 1.0, 0.0)
    inters = iw * ih
    uni = ((pred[:, 2] - pred[:, 0] + 1.0) * (pred[:, 3] - pred[:, 1] + 1.0)
           + (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0) - inters)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inters / uni


def _ap(tp_sorted: np.ndarray, npos: int) -> float:
    """vsrl_eval's AP for detections already in final order: float32 recall, VOC all-point AP, float32."""
    if npos == 0:
        return float("nan")
    if tp_sorted.size == 0:
        return 0.0
    ctp = np.cumsum(tp_sorted.astype(np.float32))
    cfp = np.cumsum((1 - tp_sorted).astype(np.float32))
    rec = ctp / np.float32(npos)
    prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return float(np.float32(voc_all_point_ap(rec, prec)))


def evaluate_vcoco(gt: VCOCOGroundTruth, det: VCOCODetections, ovr_thresh: float = 0.5) -> dict:
    """Agent AP per action and role AP per (action, role) in Scenarios 1 and 2, plus the means."""
    n_act = len(gt.actions)
    d = len(det.image_ids)
    if det.agent_scores.shape != (d, n_act) or det.role_boxes.shape != (d, len(gt.pairs), 5) or \
            det.person_boxes.shape != (d, 4):
        raise ValueError(f"detections: expected person_boxes ({d}, 4), agent_scores ({d}, {n_act}), role_boxes "
                         f"({d}, {len(gt.pairs)}, 5); got {det.person_boxes.shape}, {det.agent_scores.shape}, "
                         f"{det.role_boxes.shape}")
    img_index = {int(i): k for k, i in enumerate(gt.image_ids.tolist())}
    uniq, inv = np.unique(det.image_ids, return_inverse=True)
    lut = np.array([img_index.get(int(u), -1) for u in uniq], np.int64)
    img = lut[inv] if d else np.zeros(0, np.int64)
    if (img < 0).any():
        bad = int(det.image_ids[np.argmax(img < 0)])
        raise ValueError(f"detections for image {bad}, which is not in the V-COCO split")
    pb = det.person_boxes.astype(np.float32)
    if not np.isfinite(pb).all():
        raise ValueError(f"detection {int(np.argmax(~np.isfinite(pb).all(1)))}: person_box is not finite")
    if ((pb[:, 2] < pb[:, 0]) | (pb[:, 3] < pb[:, 1])).any():
        raise ValueError(f"detection {int(np.argmax((pb[:, 2] < pb[:, 0]) | (pb[:, 3] < pb[:, 1])))}: person_box "
                         "has x2 < x1 or y2 < y1")
    if np.isinf(det.agent_scores).any() or np.isinf(det.role_boxes[..., 4]).any():
        raise ValueError("detections: infinite scores (NaN means 'no score' and is skipped, as in vsrl_eval)")
    # person matching: best-IoU GT person of the image (first on ties), over all persons
    n_p = np.diff(gt.person_offsets)[img]
    pair_d = np.repeat(np.arange(d), n_p)
    pair_p = np.repeat(gt.person_offsets[img] - (np.cumsum(n_p) - n_p), n_p) + np.arange(len(pair_d))
    ov = _overlaps(gt.person_boxes[pair_p], pb[pair_d])
    ovmax = np.full(d, -np.inf, np.float32)
    jmax = np.full(d, -1, np.int64)
    if len(pair_d):  # overlaps are finite: boxes are validated and every +1 area is >= 1
        starts = np.flatnonzero(np.r_[True, pair_d[1:] != pair_d[:-1]])
        has = pair_d[starts]
        ovmax[has] = np.maximum.reduceat(ov, starts)
        first = np.flatnonzero(ov == ovmax[pair_d])
        first = first[np.r_[True, pair_d[first][1:] != pair_d[first][:-1]]]
        jmax[pair_d[first]] = pair_p[first]
    no_person = jmax < 0
    notes = []
    if no_person.any():
        notes.append(f"{int(no_person.sum())} detections in images without a valid GT person are false positives "
                     "(vsrl_eval crashes there)")
    ignored = np.zeros(d, bool)
    ignored[~no_person] = gt.person_actions[jmax[~no_person], 0] == -1
    jm = np.where(no_person, 0, jmax)
    good_person = ~no_person & (ovmax >= ovr_thresh)
    npos = (gt.person_actions == 1).sum(0)
    img_major = img.astype(np.uint64) << np.uint64(32)

    def visiting_order(scores):
        """Detections with a score, in the order vsrl_eval visits them: images in GT order, and in each image
        ``scores.argsort()[::-1]`` over that image's float32 scores in detection order (NaN dropped)."""
        valid = np.flatnonzero(~np.isnan(scores))
        bits = (scores[valid] + np.float32(0)).view(np.uint32)  # + 0: -0.0 sorts as 0.0, as in comparisons
        desc = np.where(bits >> 31 == 1, bits, ~bits & np.uint32(0x7FFFFFFF))  # ascending uint32 = descending score
        o = valid[np.argsort(img_major[valid] | desc.astype(np.uint64))]  # (image, score desc); ties fixed below
        img_o, score_o = img[o], scores[o]
        tied = (img_o[1:] == img_o[:-1]) & (score_o[1:] == score_o[:-1])
        if tied.any():  # ties in an image: its own argsort decides, as in vsrl_eval (NumPy's unstable sort)
            tied_images = img_o[1:][tied]
            starts = np.searchsorted(img_o, tied_images, "left")
            ends = np.searchsorted(img_o, tied_images, "right")
            for a, b in set(zip(starts.tolist(), ends.tolist())):
                members = np.sort(o[a:b])
                o[a:b] = members[np.argsort(scores[members])[::-1]]
        return o

    def score_class(scores, visited, qualifies):
        """TP flags (first qualifying detection per GT person in visiting order) in vsrl_eval's final order:
        ``sc.argsort()[::-1]`` over the float32 scores in the order they were appended."""
        appended = visited[~ignored[visited]]  # a detection whose best person is ignored is skipped
        q = appended[qualifies[appended]]
        tp = np.zeros(d, np.int8)
        if len(q):
            _, first = np.unique(jm[q], return_index=True)
            tp[q[first]] = 1
        return tp[appended[np.argsort(scores[appended])[::-1]]]

    agent_ap = np.full(n_act, np.nan, np.float32)
    for a in range(n_act):
        s = det.agent_scores[:, a].astype(np.float32, copy=False)  # vsrl_eval holds scores in float32
        qual = good_person & (gt.person_actions[jm, a] == 1)
        agent_ap[a] = _ap(score_class(s, visiting_order(s), qual), int(npos[a]))
    role_ap = {1: np.full((n_act, 2), np.nan, np.float32), 2: np.full((n_act, 2), np.nan, np.float32)}
    for k, (a, r) in enumerate(gt.pairs):
        box = det.role_boxes[:, k, :4]
        s = det.role_boxes[:, k, 4].astype(np.float32, copy=False)
        base_q = good_person & (gt.person_actions[jm, a] == 1)
        cand = np.flatnonzero(base_q)  # only these can be true positives
        gt_role = gt.role_boxes[jm[cand], a, r]
        missing = (gt_role == -1).all(1)
        role_ok = _overlaps(gt_role, box[cand]) >= ovr_thresh
        no_pred_role = (box[cand] == 0).all(1) | np.isnan(box[cand]).all(1)
        q1 = np.zeros(d, bool)
        q2 = np.zeros(d, bool)
        q1[cand] = np.where(missing, no_pred_role, role_ok)
        q2[cand] = missing | role_ok
        visited = visiting_order(s)
        role_ap[1][a, r] = _ap(score_class(s, visited, q1), int(npos[a]))
        role_ap[2][a, r] = _ap(score_class(s, visited, q2), int(npos[a]))
    for a in range(n_act):
        if npos[a] == 0:
            notes.append(f"action {gt.actions[a]} has no positive: AP NaN (vsrl_eval crashes)")
    point = [k for k, (a, r) in enumerate(gt.pairs) if gt.pair_name(a, r) == "point-instr"]
    flat = {s: np.array([role_ap[s][a, r] for a, r in gt.pairs], np.float32) for s in (1, 2)}
    keep24 = np.array([k not in point for k in range(len(gt.pairs))])
    with np.errstate(invalid="ignore"), _quiet():
        summary = {
            "agent_mAP": float(np.nansum(agent_ap) / np.float32(n_act)),
            "role_mAP_s1": float(np.nanmean(role_ap[1])),
            "role_mAP_s2": float(np.nanmean(role_ap[2])),
            "role_mAP_s1_24": float(np.nanmean(flat[1][keep24])),
            "role_mAP_s2_24": float(np.nanmean(flat[2][keep24])),
        }
    per_class = {
        "agent": {gt.actions[a]: float(agent_ap[a]) for a in range(n_act)},
        "role_s1": {gt.pair_name(a, r): float(role_ap[1][a, r]) for a, r in gt.pairs},
        "role_s2": {gt.pair_name(a, r): float(role_ap[2][a, r]) for a, r in gt.pairs},
        "npos": {gt.actions[a]: int(npos[a]) for a in range(n_act)},
    }
    return {"vcoco": summary, "per_class": per_class, "notes": notes}


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def write_vcoco_reports(output_dir, res: dict) -> None:
    """Per-class AP table (agent and role AP per scenario, #pos) and plot (AP against #positives)."""
    from pathlib import Path

    from .plots import plot_per_class, write_per_class_csv

    pc = res["per_class"]
    rows = [{"class": f"{a}-agent", "kind": "agent", "num_pos": pc["npos"][a], "ap": v} for a, v in pc["agent"].items()]
    for name, v in pc["role_s1"].items():
        rows.append({"class": name, "kind": "role", "num_pos": pc["npos"][name.split("-")[0]], "ap": v,
                     "ap_s2": pc["role_s2"][name]})
    out = Path(output_dir)
    write_per_class_csv(out / "vcoco_per_class_ap.csv", rows, ["class", "kind", "num_pos", "ap", "ap_s2"])
    roles = [r for r in rows if r["kind"] == "role"]
    plot_per_class(out / "vcoco_per_class_ap.png", [r["class"] for r in roles],
                   np.array([r["ap"] for r in roles], float), np.array([r["num_pos"] for r in roles]), {},
                   title="role AP, scenario 1 (x: test positives)")
