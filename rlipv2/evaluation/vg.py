"""Visual Genome SGDet metrics with Scene-Graph-Benchmark.pytorch semantics (``sgg_eval.py``).

Per image (predicates are 0-based here; SGB's column 0 "background" is not part of ``rel_scores``):
- graph-constrained R@K (K = 20, 50, 100): every pair keeps its argmax predicate, pairs are ranked by
  that score (the post-processor's order), and a GT relation is recalled when one of the top-K
  triplets has the same (subject label, predicate, object label) and both IoUs >= 0.5 (+1 convention,
  ``boxlist_iou``); recall = |union of recalled GT| / #GT relations; no one-to-one constraint;
- no-graph-constraint ng-R@K: all (pair, predicate) combinations ranked by score, top 100, cut at K;
- mR@K: per predicate, the per-image recall over images containing it, averaged over those images;
  the mean over all predicates counts absent ones as 0;
- zR@K: recall of the GT relations whose (subject, object, predicate) triplet is in the zero-shot list,
  averaged over images that have such relations.
Recalls are averaged over images that have GT relations.
"""
from __future__ import annotations

import numpy as np

__all__ = ["VGRecallAccumulator", "image_pred_to_gt"]

KS = (20, 50, 100)


def _iou_plus1(a, b):
    """boxlist_iou with TO_REMOVE = 1 (continuous +1 areas, intersection clamped at 0)."""
    lt = np.maximum(a[:, :2], b[:, :2])
    rb = np.minimum(a[:, 2:], b[:, 2:])
    wh = np.clip(rb - lt + 1, 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a + area_b - inter)


def image_pred_to_gt(gt_sub_boxes, gt_obj_boxes, gt_trip, pred_sub_boxes, pred_obj_boxes, pred_trip,
                     iou_thresh=0.5):
    """``_compute_pred_matches``: (P, G) bool, prediction p recalls GT relation g.

    gt_trip / pred_trip: (G, 3) / (P, 3) int (subject label, predicate, object label).
    """
    same = (pred_trip[:, None, :] == gt_trip[None, :, :]).all(2)
    pi, gi = np.nonzero(same)
    hit = np.zeros(same.shape, bool)
    if len(pi):
        ok = (_iou_plus1(gt_sub_boxes[gi], pred_sub_boxes[pi]) >= iou_thresh) & \
             (_iou_plus1(gt_obj_boxes[gi], pred_obj_boxes[pi]) >= iou_thresh)
        hit[pi[ok], gi[ok]] = True
    return hit


class VGRecallAccumulator:
    """Accumulates SGDet R@K, ng-R@K, mR@K and zR@K image by image (SGB's metric classes, vectorised)."""

    def __init__(self, num_predicates: int, zero_shot_triplets=None, ks=KS):
        self.num_predicates = int(num_predicates)
        self.ks = tuple(ks)
        self.zs = None if zero_shot_triplets is None else {tuple(int(x) for x in t) for t in zero_shot_triplets}
        self.recall = {k: [] for k in self.ks}
        self.ng_recall = {k: [] for k in self.ks}
        self.zs_recall = {k: [] for k in self.ks}
        self.ng_zs_recall = {k: [] for k in self.ks}
        self.per_pred = {k: [[] for _ in range(self.num_predicates)] for k in self.ks}
        self.ng_per_pred = {k: [[] for _ in range(self.num_predicates)] for k in self.ks}

    def add_image(self, gt_boxes, gt_labels, gt_rels, pred_boxes, pred_labels, pair_sub, pair_obj, rel_scores):
        """One image.

        gt_rels: (G, 3) (subject index, object index, predicate); pred_boxes / pred_labels: (M, 4) / (M,);
        pair_sub / pair_obj: (Q,) indices into pred_boxes; rel_scores: (Q, R) (subject, object and predicate
        scores already multiplied).
        """
        gt_rels = np.asarray(gt_rels, np.int64).reshape(-1, 3)
        if len(gt_rels) == 0:
            return
        gt_boxes = np.asarray(gt_boxes, np.float64)
        gt_labels = np.asarray(gt_labels, np.int64)
        pred_boxes = np.asarray(pred_boxes, np.float64)
        pred_labels = np.asarray(pred_labels, np.int64)
        rel_scores = np.asarray(rel_scores, np.float64)
        if not np.isfinite(rel_scores).all():
            raise ValueError("rel_scores contain NaN or inf")
        gt_trip = np.stack([gt_labels[gt_rels[:, 0]], gt_rels[:, 2], gt_labels[gt_rels[:, 1]]], 1)
        gsb, gob = gt_boxes[gt_rels[:, 0]], gt_boxes[gt_rels[:, 1]]
        zs_idx = None
        if self.zs is not None:
            zs_idx = np.array([(int(s), int(o), int(p)) in self.zs for s, p, o in gt_trip.tolist()], bool)
        # graph constraint: argmax predicate per pair, pairs in descending score order
        best = rel_scores.argmax(1)
        score = rel_scores[np.arange(len(best)), best]
        order = np.argsort(-score, kind="stable")[: max(self.ks)]
        self._score(order, best[order], gt_trip, gsb, gob, pred_boxes, pred_labels, pair_sub, pair_obj, zs_idx,
                    self.recall, self.per_pred, self.zs_recall)
        # no graph constraint: top-100 (pair, predicate)
        flat = np.argsort(-rel_scores.reshape(-1), kind="stable")[:100]
        q, p = np.divmod(flat, rel_scores.shape[1])
        self._score(q, p, gt_trip, gsb, gob, pred_boxes, pred_labels, pair_sub, pair_obj, zs_idx,
                    self.ng_recall, self.ng_per_pred, self.ng_zs_recall)

    def _score(self, q, p, gt_trip, gsb, gob, boxes, labels, pair_sub, pair_obj, zs_idx, rec, per_pred, zs_rec):
        s_idx, o_idx = np.asarray(pair_sub)[q], np.asarray(pair_obj)[q]
        pred_trip = np.stack([labels[s_idx], p, labels[o_idx]], 1)
        hit = image_pred_to_gt(gsb, gob, gt_trip, boxes[s_idx], boxes[o_idx], pred_trip)  # (P, G)
        n_gt = len(gt_trip)
        for k in self.ks:
            matched = hit[:k].any(0)
            rec[k].append(matched.sum() / n_gt)
            for pr in np.unique(gt_trip[:, 1]).tolist():
                m = gt_trip[:, 1] == pr
                per_pred[k][pr].append(matched[m].sum() / m.sum())
            if zs_idx is not None and zs_idx.any():
                zs_rec[k].append(matched[zs_idx].sum() / zs_idx.sum())

    def summary(self) -> dict:
        out = {}
        for k in self.ks:
            out[f"R@{k}"] = float(np.mean(self.recall[k])) if self.recall[k] else float("nan")
            out[f"ngR@{k}"] = float(np.mean(self.ng_recall[k])) if self.ng_recall[k] else float("nan")
            out[f"mR@{k}"] = float(sum(np.mean(v) if v else 0.0 for v in self.per_pred[k]) / self.num_predicates)
            out[f"ngmR@{k}"] = float(sum(np.mean(v) if v else 0.0 for v in self.ng_per_pred[k]) / self.num_predicates)
            if self.zs is not None:
                out[f"zR@{k}"] = float(np.mean(self.zs_recall[k])) if self.zs_recall[k] else float("nan")
                out[f"ngzR@{k}"] = float(np.mean(self.ng_zs_recall[k])) if self.ng_zs_recall[k] else float("nan")
        return out

    def per_predicate_recall(self, k=100) -> np.ndarray:
        return np.array([np.mean(v) if v else 0.0 for v in self.per_pred[k]])
