"""The algorithm of s-gupta/v-coco ``vsrl_eval.py`` re-implemented with its computational structure, for
timing it side by side with ``rlipv2.evaluation.vcoco`` (tools/benchmark_eval.py) and for cross-checks.

Written from the description of the official evaluator (docs/evaluation_protocols.md, item 7 of the
key findings, and the protocol notes), not copied. What makes the original slow is kept on purpose:
- the ground truth is built per annotation with ``np.where`` scans of the V-COCO label arrays;
- three passes (agent, role scenario 1, role scenario 2), each of which collects the detections of an
  image by scanning the whole detection list (a list of dicts) and growing its arrays one detection at
  a time with ``np.concatenate``;
- per image, per action (and role), the detections are visited one by one in score order
  (``argsort()[::-1]``, NumPy's default sort) and matched with a per-detection overlap computation.
Hence its time grows with (images x detections) per pass: quadratic in the number of images.

Where the original crashes (detections in an image without a valid person box), the detections are
false positives, as in ``rlipv2.evaluation.vcoco`` (docs/evaluation.md).

Metrics: agent AP = VOC all-point AP per action, ``nansum / #actions``; role AP per (action, role),
averaged with ``nanmean`` over the 25 pairs (and over the 24 without ``point-instr``).
"""
from __future__ import annotations

import numpy as np


def _clip(x1, y1, x2, y2, height, width):
    x1 = np.minimum(width - 1.0, np.maximum(0.0, x1))
    y1 = np.minimum(height - 1.0, np.maximum(0.0, y1))
    x2 = np.minimum(width - 1.0, np.maximum(0.0, x2))
    y2 = np.minimum(height - 1.0, np.maximum(0.0, y2))
    return x1, y1, x2, y2


def _overlap(boxes, ref):
    iw = np.maximum(np.minimum(boxes[:, 2], ref[2]) - np.maximum(boxes[:, 0], ref[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(boxes[:, 3], ref[3]) - np.maximum(boxes[:, 1], ref[1]) + 1.0, 0.0)
    inter = iw * ih
    union = (ref[2] - ref[0] + 1.0) * (ref[3] - ref[1] + 1.0) + (boxes[:, 2] - boxes[:, 0] + 1.0) * \
        (boxes[:, 3] - boxes[:, 1] + 1.0) - inter
    return inter / union


def _voc_ap(rec, prec):
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


class VsrlEvalLike:
    """``VsrlEvalLike(vcoco_list, coco_dict, image_ids).evaluate(detections)`` -> metrics dict."""

    def __init__(self, vcoco, coco, image_ids):
        self.vcoco = []
        for x in vcoco:
            n = len(x["ann_id"])
            self.vcoco.append({"action_name": x["action_name"], "role_name": list(x["role_name"]),
                               "ann_id": np.asarray(x["ann_id"]).reshape(n, 1),
                               "label": np.asarray(x["label"]).reshape(n, 1),
                               "role_object_id": np.asarray(x["role_object_id"]).reshape(len(x["role_name"]), n).T})
        self.actions = [x["action_name"] for x in self.vcoco]
        self.roles = [x["role_name"] for x in self.vcoco]
        self.num_actions = len(self.actions)
        self.image_ids = np.asarray(image_ids)
        self.images = {im["id"]: im for im in coco["images"]}
        self.anns_of = {}
        for ann in coco["annotations"]:
            self.anns_of.setdefault(ann["image_id"], []).append(ann)
        cat_ids = sorted(c["id"] for c in coco["categories"])
        self.cat_to_class = {c: i + 1 for i, c in enumerate(cat_ids)}

    # ---- ground truth
    def _vsrl_data(self, ann_id, ann_ids, objs):
        action_id = -np.ones(self.num_actions, np.int32)
        role_id = -np.ones((self.num_actions, 2), np.int32)
        if np.where(self.vcoco[0]["ann_id"] == ann_id)[0].size == 0:
            return action_id, role_id
        action_id[:] = 0
        for i, x in enumerate(self.vcoco):
            has = np.where(np.logical_and(x["ann_id"] == ann_id, x["label"] == 1))[0]
            if has.size > 0:
                action_id[i] = 1
                rids = x["role_object_id"][has]
                for j in range(1, rids.shape[1]):
                    if rids[0, j] == 0:
                        continue
                    role_id[i, j - 1] = np.where(ann_ids == rids[0, j])[0][0]
        return action_id, role_id

    def _db(self):
        db = []
        for iid in self.image_ids.tolist():
            im = self.images[iid]
            valid, valid_ids = [], []
            for ann in self.anns_of.get(iid, []):
                if ann.get("ignore", 0) == 1:
                    continue
                x1, y1 = ann["bbox"][0], ann["bbox"][1]
                x2 = x1 + np.maximum(0.0, ann["bbox"][2] - 1.0)
                y2 = y1 + np.maximum(0.0, ann["bbox"][3] - 1.0)
                x1, y1, x2, y2 = _clip(x1, y1, x2, y2, im["height"], im["width"])
                if ann["area"] > 0 and x2 > x1 and y2 > y1:
                    valid.append((ann, [x1, y1, x2, y2]))
                    valid_ids.append(ann["id"])
            valid_ids = np.asarray(valid_ids)
            n = len(valid)
            boxes = np.zeros((n, 4), np.float32)
            classes = np.zeros(n, np.int32)
            actions = -np.ones((n, self.num_actions), np.int32)
            role_id = -np.ones((n, self.num_actions, 2), np.int32)
            for k, (ann, box) in enumerate(valid):
                boxes[k] = box
                classes[k] = self.cat_to_class[ann["category_id"]]
                actions[k], role_id[k] = self._vsrl_data(ann["id"], valid_ids, valid)
            db.append({"id": iid, "boxes": boxes, "gt_classes": classes, "gt_actions": actions,
                       "gt_role_id": role_id})
        return db

    # ---- detections
    def _collect(self, dets, image_id):
        agents = np.empty((0, 4 + self.num_actions), np.float32)
        roles = np.empty((0, 5 * self.num_actions, 2), np.float32)
        for det in dets:  # the whole list, for every image
            if det["image_id"] == image_id:
                agent = np.zeros((1, 4 + self.num_actions), np.float32)
                role = np.zeros((1, 5 * self.num_actions, 2), np.float32)
                agent[0, :4] = det["person_box"]
                for a in range(self.num_actions):
                    for j, r in enumerate(self.roles[a]):
                        if r == "agent":
                            agent[0, 4 + a] = det[self.actions[a] + "_" + r]
                        else:
                            role[0, 5 * a : 5 * a + 5, j - 1] = det[self.actions[a] + "_" + r]
                agents = np.concatenate((agents, agent), axis=0)
                roles = np.concatenate((roles, role), axis=0)
        return agents, roles

    # ---- the three passes
    def _agent_ap(self, db, dets, thresh):
        tp = [[] for _ in range(self.num_actions)]
        fp = [[] for _ in range(self.num_actions)]
        sc = [[] for _ in range(self.num_actions)]
        npos = np.zeros(self.num_actions, np.float32)
        for entry in db:
            gi = np.where(entry["gt_classes"] == 1)[0]
            gt_boxes, gt_actions = entry["boxes"][gi], entry["gt_actions"][gi]
            ignore = np.any(gt_actions == -1, axis=1)
            for a in range(self.num_actions):
                npos[a] += np.sum(gt_actions[:, a] == 1)
            agents, _ = self._collect(dets, entry["id"])
            for a in range(self.num_actions):
                covered = np.zeros(gt_boxes.shape[0], bool)
                scores, boxes = agents[:, 4 + a], agents[:, :4]
                valid = np.where(np.isnan(scores) == False)[0]  # noqa: E712
                scores, boxes = scores[valid], boxes[valid]
                for j in scores.argsort()[::-1]:
                    if gt_boxes.shape[0] == 0:  # vsrl_eval crashes here; scored as a false positive
                        sc[a].append(scores[j])
                        tp[a].append(0)
                        fp[a].append(1)
                        continue
                    ov = _overlap(gt_boxes, boxes[j])
                    jmax, ovmax = ov.argmax(), ov.max()
                    if ignore[jmax]:
                        continue
                    sc[a].append(scores[j])
                    if gt_actions[jmax, a] == 1 and ovmax >= thresh and not covered[jmax]:
                        covered[jmax] = True
                        tp[a].append(1)
                        fp[a].append(0)
                    else:
                        tp[a].append(0)
                        fp[a].append(1)
        ap = np.zeros(self.num_actions, np.float32)
        for a in range(self.num_actions):
            ap[a] = self._ap(tp[a], fp[a], sc[a], npos[a])
        return ap

    def _role_ap(self, db, dets, thresh, scenario):
        A = self.num_actions
        tp = [[[] for _ in range(2)] for _ in range(A)]
        fp = [[[] for _ in range(2)] for _ in range(A)]
        sc = [[[] for _ in range(2)] for _ in range(A)]
        npos = np.zeros(A, np.float32)
        for entry in db:
            gi = np.where(entry["gt_classes"] == 1)[0]
            gt_boxes, gt_actions = entry["boxes"][gi], entry["gt_actions"][gi]
            ignore = np.any(gt_actions == -1, axis=1)
            for a in range(A):
                npos[a] += np.sum(gt_actions[:, a] == 1)
            agents, roles = self._collect(dets, entry["id"])
            for a in range(A):
                if len(self.roles[a]) < 2:
                    continue
                for r in range(len(self.roles[a]) - 1):
                    covered = np.zeros(gt_boxes.shape[0], bool)
                    role_inds = entry["gt_role_id"][gi, a, r]
                    gt_roles = -np.ones_like(gt_boxes)
                    for j in range(gt_boxes.shape[0]):
                        if role_inds[j] > -1:
                            gt_roles[j] = entry["boxes"][role_inds[j]]
                    boxes = agents[:, :4]
                    role_boxes = roles[:, 5 * a : 5 * a + 4, r]
                    scores = roles[:, 5 * a + 4, r]
                    valid = np.where(np.isnan(scores) == False)[0]  # noqa: E712
                    scores, boxes, role_boxes = scores[valid], boxes[valid], role_boxes[valid]
                    for j in scores.argsort()[::-1]:
                        if gt_boxes.shape[0] == 0:  # vsrl_eval crashes here; scored as a false positive
                            sc[a][r].append(scores[j])
                            tp[a][r].append(0)
                            fp[a][r].append(1)
                            continue
                        ov = _overlap(gt_boxes, boxes[j])
                        jmax, ovmax = ov.argmax(), ov.max()
                        if ignore[jmax]:
                            continue
                        if np.all(gt_roles[jmax] == -1):
                            if scenario == 1:
                                no_role = np.all(role_boxes[j] == 0.0) or np.all(np.isnan(role_boxes[j]))
                                ov_role = 1.0 if no_role else 0.0
                            else:
                                ov_role = 1.0
                        else:
                            ov_role = _overlap(gt_roles[jmax].reshape(1, 4), role_boxes[j])[0]
                        sc[a][r].append(scores[j])
                        if gt_actions[jmax, a] == 1 and ovmax >= thresh and ov_role >= thresh and not covered[jmax]:
                            covered[jmax] = True
                            tp[a][r].append(1)
                            fp[a][r].append(0)
                        else:
                            tp[a][r].append(0)
                            fp[a][r].append(1)
        ap = np.full((A, 2), np.nan, np.float32)
        for a in range(A):
            for r in range(len(self.roles[a]) - 1):
                ap[a, r] = self._ap(tp[a][r], fp[a][r], sc[a][r], npos[a])
        return ap

    @staticmethod
    def _ap(tp, fp, sc, npos):
        tp, fp, sc = (np.array(v, np.float32) for v in (tp, fp, sc))
        idx = sc.argsort()[::-1]
        tp, fp = np.cumsum(tp[idx]), np.cumsum(fp[idx])
        rec = tp / float(npos)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        return _voc_ap(rec, prec)

    def evaluate(self, dets, thresh=0.5) -> dict:
        db = self._db()
        agent = self._agent_ap(db, dets, thresh)
        s1 = self._role_ap(db, dets, thresh, 1)
        s2 = self._role_ap(db, dets, thresh, 2)
        pairs = [(a, r) for a in range(self.num_actions) for r in range(len(self.roles[a]) - 1)]
        keep = [k for k, (a, r) in enumerate(pairs) if f"{self.actions[a]}-{self.roles[a][r + 1]}" != "point-instr"]
        flat = {s: np.array([ap[a, r] for a, r in pairs], np.float32) for s, ap in ((1, s1), (2, s2))}
        return {"agent_mAP": float(np.nansum(agent) / np.float32(self.num_actions)),
                "role_mAP_s1": float(np.nanmean(s1)), "role_mAP_s2": float(np.nanmean(s2)),
                "role_mAP_s1_24": float(np.nanmean(flat[1][keep])), "role_mAP_s2_24": float(np.nanmean(flat[2][keep]))}
