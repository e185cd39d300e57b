"""Vectorised HICO-DET evaluation core, reproducing two official protocols exactly.

``protocol="qpic"``: the Python evaluator of QPIC / CDN / RLIP / RLIPv2 (``datasets/hico_eval.py``):
  1. per image, flatten the Q x V (query, verb) candidates, score ``verb_score * correct_mat[verb, obj]``,
     stable-sort descending, keep the top-k (100) -- zero-scored (masked) candidates included;
  2. optional triplet NMS after the cut;
  3. classes are the distinct (subject label, object label, verb) triplets of the test ground truth;
     a candidate whose triplet is not one of them is skipped (neither TP nor FP);
  4. greedy matching per image in score order: the candidate goes to the GT hoi (same labels and verb,
     both IoUs >= 0.5) with the largest min(IoU_s, IoU_o), the first one on ties; TP if that GT is not yet
     taken, otherwise FP (no fallback to the second-best GT); IoU is ``iou_qpic`` (+1 convention, a
     one-pixel-thick intersection counts as 0);
  5. images without any ground-truth box are skipped entirely (the official list-vs-tuple quirk);
     images with boxes but no hoi produce false positives;
  6. per class: ``np.argsort(-score)`` (non-stable), cumsum, 11-point AP with ``np.arange`` thresholds.

``protocol="matlab"``: ywchao/ho-rcnn ``VOCevaldet_bboxpair.m``:
  classes are the valid (object, verb) pairs of ``correct_mat`` (the subject is the human by
  construction, its label is not compared); detections are the correct-mat-valid candidates (optionally
  capped at top-k per image); predicted boxes get +1 (0-based detections vs 1-based GT); IoU ``iou_voc``;
  a detection in an image without GT of its class is a FP; per class stable sort, MATLAB colon
  thresholds. Known-Object mode keeps, for each class, only detections in images whose ground truth
  contains the class's object.

Everything is array code: candidates of all images sit in flat arrays in (image, rank) order, the
candidate-GT join is a sorted-key search, and each class is one sort + cumsum.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .ap import MATLAB_COLON_THRESHOLDS, NUMPY_ARANGE_THRESHOLDS, per_class_eleven_point_ap
from .boxes import check_boxes, iou_qpic, iou_voc
from .plots import plot_per_class, write_per_class_csv

logger = logging.getLogger(__name__)

__all__ = [
    "PROTOCOLS",
    "HOIGroundTruth",
    "HOICandidates",
    "CandidateSelector",
    "topk_stable",
    "select_triplet_candidates",
    "apply_triplet_nms",
    "evaluate_hoi",
    "HOIResult",
    "score_hico",
    "result_rows",
    "write_reports",
]

PROTOCOLS = ("qpic", "matlab")


@dataclass
class HOIGroundTruth:
    """Ground truth of a HOI test set in flat arrays (contiguous label ids).

    Attributes:
        file_names: N image names (the key predictions are matched by).
        box_offsets: (N + 1,) image i owns boxes[box_offsets[i]:box_offsets[i + 1]].
        boxes: (B, 4) xyxy absolute; labels: (B,) object ids.
        hoi_offsets: (N + 1,) image i owns hois hoi_offsets[i]:hoi_offsets[i + 1].
        hoi_sub, hoi_obj: (H,) GLOBAL box indices; hoi_verb: (H,) verb ids.
    """

    file_names: list
    box_offsets: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    hoi_offsets: np.ndarray
    hoi_sub: np.ndarray
    hoi_obj: np.ndarray
    hoi_verb: np.ndarray
    _index: dict = field(default=None, repr=False)

    @classmethod
    def from_images(cls, images, box_dtype=np.float32) -> HOIGroundTruth:
        """Build from per-image dicts {"file_name", "boxes" (G, 4), "labels" (G,), "hois" (H, 3) local (s, o, v)}."""
        names, boxes, labels, subs, objs, verbs = [], [], [], [], [], []
        box_off, hoi_off = [0], [0]
        for img in images:
            name = img["file_name"]
            b = check_boxes(np.asarray(img["boxes"], dtype=np.float64).reshape(-1, 4), f"ground truth {name}")
            lab = np.asarray(img["labels"], dtype=np.int64).reshape(-1)
            h = np.asarray(img["hois"], dtype=np.int64).reshape(-1, 3)
            if len(lab) != len(b):
                raise ValueError(f"ground truth {name}: {len(b)} boxes but {len(lab)} labels")
            if len(h) and (h[:, :2].min() < 0 or h[:, :2].max() >= len(b)):
                raise ValueError(f"ground truth {name}: hoi subject/object index out of range [0, {len(b)})")
            names.append(name)
            boxes.append(b)
            labels.append(lab)
            subs.append(h[:, 0] + box_off[-1])
            objs.append(h[:, 1] + box_off[-1])
            verbs.append(h[:, 2])
            box_off.append(box_off[-1] + len(b))
            hoi_off.append(hoi_off[-1] + len(h))
        cat = lambda xs, shape, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(shape, dt)  # noqa: E731
        return cls(names, np.asarray(box_off, np.int64), cat(boxes, (0, 4), box_dtype), cat(labels, (0,), np.int64),
                   np.asarray(hoi_off, np.int64), cat(subs, (0,), np.int64), cat(objs, (0,), np.int64),
                   cat(verbs, (0,), np.int64))

    @property
    def num_images(self) -> int:
        return len(self.file_names)

    def index_of(self, file_name: str) -> int:
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.file_names)}
            if len(self._index) != len(self.file_names):
                raise ValueError("ground truth: duplicate file names")
        try:
            return self._index[file_name]
        except KeyError:
            raise KeyError(f"prediction for unknown image {file_name!r} (not in the ground truth)") from None

    def subset(self, image_indices) -> HOIGroundTruth:
        """Ground truth restricted to the given images (in the given order)."""
        imgs = []
        for i in image_indices:
            b0, b1 = self.box_offsets[i], self.box_offsets[i + 1]
            h0, h1 = self.hoi_offsets[i], self.hoi_offsets[i + 1]
            hois = np.stack([self.hoi_sub[h0:h1] - b0, self.hoi_obj[h0:h1] - b0, self.hoi_verb[h0:h1]], 1)
            imgs.append({"file_name": self.file_names[i], "boxes": self.boxes[b0:b1], "labels": self.labels[b0:b1],
                         "hois": hois})
        return HOIGroundTruth.from_images(imgs, box_dtype=self.boxes.dtype)


@dataclass
class HOICandidates:
    """Scored HOI triplet candidates of many images, in (image, rank) order.

    Attributes (all (C,) or (C, 4)): image (index into the ground truth), sub_boxes, obj_boxes,
    sub_labels, obj_labels, verbs, scores; query (the query each came from, -1 if unknown).
    """

    image: np.ndarray
    sub_boxes: np.ndarray
    obj_boxes: np.ndarray
    sub_labels: np.ndarray
    obj_labels: np.ndarray
    verbs: np.ndarray
    scores: np.ndarray
    query: np.ndarray

    def __len__(self) -> int:
        return len(self.image)

    def take(self, idx) -> HOICandidates:
        return HOICandidates(*(getattr(self, f)[idx] for f in _CAND_FIELDS))

    @staticmethod
    def concatenate(parts) -> HOICandidates:
        parts = [p for p in parts if p is not None]
        if not parts:
            return _empty_candidates()
        out = HOICandidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in _CAND_FIELDS))
        if len(out.image) < 2 or bool((out.image[1:] >= out.image[:-1]).all()):
            return out  # parts already in image order (one shape group, images added in order)
        order = np.argsort(out.image, kind="stable")  # keeps the rank order inside each image
        return out.take(order)


_CAND_FIELDS = ("image", "sub_boxes", "obj_boxes", "sub_labels", "obj_labels", "verbs", "scores", "query")


def _empty_candidates(score_dtype=np.float32, box_dtype=np.float32) -> HOICandidates:
    z = np.zeros(0, np.int64)
    return HOICandidates(z, np.zeros((0, 4), box_dtype), np.zeros((0, 4), box_dtype), z, z, z,
                         np.zeros(0, score_dtype), z)


def topk_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """Row-wise top-k indices of a (B, N) score array, ordered like a stable descending sort.

    Equal scores keep their column order (Python's ``list.sort(key=score, reverse=True)``), including
    ties at the k-th value. ``k <= 0`` or ``k >= N`` sorts whole rows. Returns (B, min(k, N)) int64.
    """
    b, n = scores.shape
    if k <= 0 or k >= n:
        return np.argsort(-scores, axis=1, kind="stable")
    idx = np.argpartition(scores, n - k, axis=1)[:, n - k :]  # the k largest, unordered
    kth = np.take_along_axis(scores, idx, 1).min(1, keepdims=True)  # the k-th largest value
    # a row is exact unless scores equal to the k-th value straddle the cut
    n_eq_all = np.count_nonzero(scores == kth, axis=1)
    n_eq_sel = np.count_nonzero(np.take_along_axis(scores, idx, 1) == kth, axis=1)
    bad = np.nonzero(n_eq_all != n_eq_sel)[0]
    for r in bad.tolist():  # rare: pick the equal ones by column order
        row = scores[r]
        gt_cols = np.nonzero(row > kth[r, 0])[0]
        eq_cols = np.nonzero(row == kth[r, 0])[0][: k - len(gt_cols)]
        idx[r] = np.concatenate([gt_cols, eq_cols])
    idx.sort(axis=1)  # column order, so that the stable sort below breaks ties by column
    vals = np.take_along_axis(scores, idx, 1)
    return np.take_along_axis(idx, np.argsort(-vals, axis=1, kind="stable"), 1)


class CandidateSelector:
    """Turns raw per-query predictions into top-k triplet candidates, batching images of equal shape.

    Per image (``add``): boxes (M, 4), labels (M,) contiguous object ids, verb_scores (Q, V),
    sub_ids / obj_ids (Q,) indices into boxes. Scores are ``verb_scores * correct_mat[verb, obj_label]``.
    qpic: top-k over all Q x V of those (masked zeros included); matlab: top-k over the valid ones only
    (``top_k <= 0``: no cap).
    """

    def __init__(self, correct_mat: np.ndarray, top_k: int = 100, protocol: str = "qpic", chunk: int = 256,
                 label_lut: np.ndarray | None = None):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        cm = np.asarray(correct_mat)
        if cm.ndim != 2:
            raise ValueError(f"correct_mat must be 2-D (num_verbs, num_objects), got shape {cm.shape}")
        if not np.isin(cm, (0, 1)).all():
            raise ValueError("correct_mat must contain only 0 and 1")
        self.valid_T = cm.T.astype(bool)  # (O, V)
        self.num_verbs = cm.shape[0]
        self.num_objects = cm.shape[1]
        # per object, its valid verbs in ascending order, padded: scores are gathered into (Q, vmax)
        # blocks, so the top-k search runs over the valid (object, verb) entries only
        counts = self.valid_T.sum(1)
        self.vmax = max(int(counts.max()) if counts.size else 0, 1)
        self.gather = np.zeros((self.num_objects, self.vmax), np.int64)
        self.pad = np.ones((self.num_objects, self.vmax), bool)
        for o in range(self.num_objects):
            vv = np.nonzero(self.valid_T[o])[0]
            self.gather[o, : len(vv)] = vv
            self.pad[o, : len(vv)] = False
        self.top_k = int(top_k)
        self.protocol = protocol
        self.chunk = chunk
        self._buffers: dict = {}
        self._parts: list = []
        # optional dataset id -> contiguous id table (-1 = unknown), applied to the labels in batches
        self.label_lut = None if label_lut is None else np.asarray(label_lut, np.int64)

    def add(self, image: int, boxes, labels, verb_scores, sub_ids, obj_ids, where: str = "") -> None:
        """Queue one image (validated in batches when its shape group is flushed)."""
        boxes = np.asarray(boxes)
        vs = np.asarray(verb_scores)
        if boxes.ndim != 2 or boxes.shape[-1:] != (4,) or vs.ndim != 2:
            if boxes.size == 0 and vs.size == 0:
                return
            raise ValueError(f"predictions {where or f'image {image}'}: boxes must be (M, 4) and verb_scores "
                             f"(Q, {self.num_verbs}), got {boxes.shape} / {vs.shape}")
        if vs.shape[0] == 0:
            return
        labels, sub_ids, obj_ids = np.asarray(labels), np.asarray(sub_ids), np.asarray(obj_ids)
        key = (boxes.shape, labels.shape, vs.shape, sub_ids.shape, obj_ids.shape, vs.dtype.str, boxes.dtype.str)
        buf = self._buffers.setdefault(key, [])
        buf.append((image, boxes, labels, vs, sub_ids, obj_ids, where or f"image {image}"))
        if len(buf) >= self.chunk:
            self._flush(key)

    def _validate(self, buf, boxes, labels, vs, sub_ids, obj_ids) -> None:
        """Batched input checks; on failure, name the first offending image."""
        def fail(mask, msg):
            i = int(np.nonzero(mask)[0][0])
            raise ValueError(f"predictions {buf[i][6]}: {msg}")

        bsz, m = boxes.shape[:2]
        q = vs.shape[1]
        if labels.shape != (bsz, m):
            fail(np.ones(bsz, bool), f"labels must have shape ({m},) like the boxes, got {labels.shape[1:]}")
        if vs.shape[2] != self.num_verbs:
            fail(np.ones(bsz, bool), f"verb_scores must have shape (Q, {self.num_verbs}), got {vs.shape[1:]}")
        if sub_ids.shape != (bsz, q) or obj_ids.shape != (bsz, q):
            fail(np.ones(bsz, bool), f"sub_ids/obj_ids must have shape ({q},), got {sub_ids.shape[1:]} / "
                                     f"{obj_ids.shape[1:]}")
        if not np.issubdtype(vs.dtype, np.floating):
            fail(np.ones(bsz, bool), f"verb_scores must be floating point, got {vs.dtype}")
        fin = np.isfinite(vs).reshape(bsz, -1).all(1)
        if not fin.all():
            fail(~fin, "verb_scores contain NaN or inf")
        bfin = np.isfinite(boxes).reshape(bsz, -1).all(1)
        if not bfin.all():
            fail(~bfin, "boxes contain NaN or inf")
        inv = ((boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1])).any(1)
        if inv.any():
            fail(inv, "a box has x2 < x1 or y2 < y1 (boxes must be x1, y1, x2, y2)")
        bad = ((labels < 0) | (labels >= self.num_objects)).any(1)
        if bad.any():
            fail(bad, f"labels out of range [0, {self.num_objects})")
        bad = ((sub_ids < 0) | (sub_ids >= m) | (obj_ids < 0) | (obj_ids >= m)).any(1)
        if bad.any():
            fail(bad, f"sub_ids/obj_ids out of range [0, {m})")

    def _flush(self, key) -> None:
        buf = self._buffers.pop(key, [])
        if not buf:
            return
        imgs = np.array([b[0] for b in buf], np.int64)
        boxes = np.stack([b[1] for b in buf])  # (B, M, 4)
        labels = np.stack([b[2] for b in buf])  # (B, M)
        vs = np.stack([b[3] for b in buf])  # (B, Q, V)
        sub_ids = np.stack([b[4] for b in buf])  # (B, Q)
        obj_ids = np.stack([b[5] for b in buf])
        if self.label_lut is not None:
            raw = labels.astype(np.int64)
            out = (raw < 0) | (raw >= len(self.label_lut))
            labels = np.where(out, -1, self.label_lut[np.clip(raw, 0, len(self.label_lut) - 1)])
            unknown = (labels < 0).any(1)
            if unknown.any():
                i = int(np.nonzero(unknown)[0][0])
                raise ValueError(f"predictions {buf[i][6]}: unknown object category_id "
                                 f"{int(raw[i][labels[i] < 0][0])} (see --object-ids)")
        self._validate(buf, boxes, labels, vs, sub_ids, obj_ids)
        labels = labels.astype(np.int64, copy=False)
        sub_ids = sub_ids.astype(np.int64, copy=False)
        obj_ids = obj_ids.astype(np.int64, copy=False)
        bsz, q, v = vs.shape
        obj_lab = np.take_along_axis(labels, obj_ids, 1)  # (B, Q)
        gidx = self.gather[obj_lab]  # (B, Q, vmax) verb of each compressed slot
        comp = np.take_along_axis(vs, gidx, 2)
        np.copyto(comp, np.array(-np.inf, comp.dtype), where=self.pad[obj_lab])
        flat = comp.reshape(bsz, q * self.vmax)
        top = topk_stable(flat, self.top_k)  # (B, k) compressed positions; ties by flat (q, verb) order
        sc = np.take_along_axis(flat, top, 1)
        qi, ji = np.divmod(top, self.vmax)
        vi = np.take_along_axis(gidx.reshape(bsz, -1), top, 1)
        if self.protocol == "qpic":
            # exact unless masked zeros could enter the top-k (fewer than k positive valid scores)
            need_full = ~((sc > 0).all(1) & (top.shape[1] == (self.top_k if self.top_k > 0 else q * v)))
            rows_full = np.nonzero(need_full)[0]
            if len(rows_full):
                qi, vi, sc = qi.tolist(), vi.tolist(), list(sc)
                for r in rows_full.tolist():
                    masked = (vs[r] * self.valid_T[obj_lab[r]]).reshape(1, -1)
                    f = topk_stable(masked, self.top_k)[0]
                    qi[r], vi[r] = np.divmod(f, v)
                    sc[r] = masked[0, f]
                rows = np.repeat(np.arange(bsz), [len(x) for x in sc])
                qi, vi, sc = (np.concatenate([np.asarray(x) for x in arr]) for arr in (qi, vi, sc))
            else:
                rows = np.repeat(np.arange(bsz), top.shape[1])
                qi, vi, sc = qi.reshape(-1), vi.reshape(-1), sc.reshape(-1)
        else:
            rows = np.repeat(np.arange(bsz), top.shape[1])
            qi, vi, sc = qi.reshape(-1), vi.reshape(-1), sc.reshape(-1)
            keep = np.isfinite(sc)
            rows, qi, vi, sc = rows[keep], qi[keep], vi[keep], sc[keep]
        si, oi = sub_ids[rows, qi], obj_ids[rows, qi]
        self._parts.append(HOICandidates(
            image=imgs[rows], sub_boxes=boxes[rows, si], obj_boxes=boxes[rows, oi], sub_labels=labels[rows, si],
            obj_labels=labels[rows, oi], verbs=vi.astype(np.int64), scores=sc, query=qi.astype(np.int64)))

    def finish(self) -> HOICandidates:
        for key in list(self._buffers):
            self._flush(key)
        out = HOICandidates.concatenate(self._parts)
        self._parts = []
        return out


def select_triplet_candidates(image: int, sub_boxes, obj_boxes, sub_labels, obj_labels, verbs, scores,
                              correct_mat: np.ndarray, top_k: int = 100, protocol: str = "qpic",
                              where: str = "") -> HOICandidates:
    """Top-k selection for predictions already in triplet form (one image), in list order for ties."""
    where = where or f"image {image}"
    scores = np.asarray(scores)
    n = len(scores)
    sub_boxes = check_boxes(np.asarray(sub_boxes).reshape(-1, 4), f"predictions {where} (subject)")
    obj_boxes = check_boxes(np.asarray(obj_boxes).reshape(-1, 4), f"predictions {where} (object)")
    sub_labels = np.asarray(sub_labels, np.int64).reshape(-1)
    obj_labels = np.asarray(obj_labels, np.int64).reshape(-1)
    verbs = np.asarray(verbs, np.int64).reshape(-1)
    if not (len(sub_boxes) == len(obj_boxes) == len(sub_labels) == len(obj_labels) == len(verbs) == n):
        raise ValueError(f"predictions {where}: triplet arrays have different lengths")
    if n == 0:
        return _empty_candidates(scores.dtype if scores.dtype.kind == "f" else np.float32, sub_boxes.dtype)
    if not np.isfinite(scores).all():
        raise ValueError(f"predictions {where}: scores contain NaN or inf")
    cm = np.asarray(correct_mat)
    nv, no = cm.shape
    if verbs.min() < 0 or verbs.max() >= nv:
        raise ValueError(f"predictions {where}: verb ids out of range [0, {nv})")
    for lab in (sub_labels, obj_labels):
        if lab.min() < 0 or lab.max() >= no:
            raise ValueError(f"predictions {where}: object labels out of range [0, {no})")
    valid = cm[verbs, obj_labels].astype(bool)
    if protocol == "qpic":
        sc = scores * valid.astype(scores.dtype)
        idx = topk_stable(sc[None], top_k)[0]
    else:
        sc = np.where(valid, scores, np.array(-np.inf, scores.dtype))
        idx = topk_stable(sc[None], top_k)[0]
        idx = idx[np.isfinite(sc[idx])]
    return HOICandidates(np.full(len(idx), image, np.int64), sub_boxes[idx], obj_boxes[idx], sub_labels[idx],
                         obj_labels[idx], verbs[idx], sc[idx], np.full(len(idx), -1, np.int64))


def triplet_codes(cand: HOICandidates, num_objects: int, num_verbs: int) -> np.ndarray:
    """(subject label, object label, verb) code of each candidate."""
    return (cand.sub_labels * num_objects + cand.obj_labels) * num_verbs + cand.verbs


def image_group_ids(image: np.ndarray, code: np.ndarray) -> np.ndarray:
    """One int64 id per (image, code) pair (codes are non-negative)."""
    if len(code) == 0:
        return np.zeros(0, np.int64)
    span = int(code.max()) + 1
    if int(image.max()) < np.iinfo(np.int64).max // span - 1:
        return image.astype(np.int64) * span + code
    return np.unique(np.stack([image, code], 1), axis=0, return_inverse=True)[1].reshape(-1)


def apply_triplet_nms(cand: HOICandidates, num_objects: int, num_verbs: int, thresh: float = 0.7,
                      alpha: float = 1.0, beta: float = 0.5, backend: str = "auto",
                      grouped: bool = False) -> HOICandidates:
    """Pairwise triplet NMS (CDN / RLIPv2 ``triplet_nms_filter``) after the top-k cut, all images at once.

    Groups are (image, subject label, object label, verb), all resolved in one call of
    ``rlipv2.evaluation.nms.batched_triplet_nms`` (numpy, or the compiled op when torch is loaded).
    Returns the survivors per image in descending score, ties in the official grouped list order
    (``grouped=False``, what the HICO matching reads), or in that grouped order itself (``grouped=True``,
    the list RLIPv2's OI evaluator works on).
    """
    from .nms import batched_triplet_nms

    if len(cand) == 0:
        return cand
    code = triplet_codes(cand, num_objects, num_verbs)
    same_image = cand.image[1:] == cand.image[:-1]
    # candidates in (image, rank) order have non-increasing scores inside an image: a faster NMS sort
    score_sorted = bool((~same_image | (cand.scores[1:] <= cand.scores[:-1])).all())
    keep = batched_triplet_nms(cand.sub_boxes, cand.obj_boxes, cand.scores, image_group_ids(cand.image, code),
                               thresh, alpha, beta, backend=backend, score_sorted=score_sorted)
    kept = np.flatnonzero(keep)
    # the official list order after NMS: per image, groups in order of first appearance, each in descending
    # score (equal scores: later first); matching then re-sorts it stably by score, so ties keep it
    image, code_k, scores = cand.image[kept], code[kept], cand.scores[kept]
    tie = (image[1:] == image[:-1]) & (scores[1:] == scores[:-1])
    if grouped and score_sorted:
        # without equal scores in an image, the rank order inside a group is its visiting order and groups
        # follow their first member; first positions grow with the image, so one sort does it
        g = np.argsort(_first_of_group(image_group_ids(image, code_k)), kind="stable")
        if tie.any():  # images with equal scores: the full rule, spliced into their (unchanged) blocks
            sub = np.flatnonzero(np.isin(image, np.unique(image[1:][tie])))
            slots = np.flatnonzero(np.isin(image[g], np.unique(image[1:][tie])))
            g[slots] = sub[_grouped_order(image[sub], code_k[sub], scores[sub])]
        return cand.take(kept[g])
    if grouped or not score_sorted:
        g = _grouped_order(image, code_k, scores)
        if not grouped:
            g = g[np.lexsort((np.arange(len(g)), -scores[g].astype(np.float64), image[g]))]
        return cand.take(kept[g])
    # rank order is already by descending score: only images with equal scores need the grouped tie order
    if tie.any():
        sub = np.flatnonzero(np.isin(image, np.unique(image[1:][tie])))
        g = _grouped_order(image[sub], code_k[sub], scores[sub])
        g = g[np.lexsort((np.arange(len(g)), -scores[sub][g].astype(np.float64), image[sub][g]))]
        kept = kept.copy()
        kept[sub] = kept[sub][g]  # the images' blocks stay where they are
    return cand.take(kept)


def _first_of_group(combo: np.ndarray) -> np.ndarray:
    """For each entry, the position of the first entry with the same id."""
    o = np.argsort(combo, kind="stable")
    sc = combo[o]
    head = np.r_[True, sc[1:] != sc[:-1]]
    first_of_sorted = np.maximum.accumulate(np.where(head, np.arange(len(o)), 0))
    first = np.empty(len(o), np.int64)
    first[o] = o[first_of_sorted]
    return first


def _grouped_order(image: np.ndarray, code: np.ndarray, scores: np.ndarray) -> np.ndarray:
    if len(code) == 0:
        return np.zeros(0, np.int64)
    pos = np.arange(len(code))
    # first position of each (image, code) group: candidates are in (image, rank) order
    first = _first_of_group(image_group_ids(image, code))
    return np.lexsort((-pos, -scores.astype(np.float64), first, image))


def grouped_triplet_order(cand: HOICandidates, num_objects: int, num_verbs: int) -> np.ndarray:
    """Order of the official ``triplet_nms_filter`` output: per image, triplet groups in order of first
    appearance in the (rank-ordered) list, each group in descending score, equal scores later-first."""
    return _grouped_order(cand.image, triplet_codes(cand, num_objects, num_verbs), cand.scores)


@dataclass
class HOIResult:
    """Per-class and summary results of one evaluation."""

    protocol: str
    classes: np.ndarray  # (K, 3) (subject, object, verb); subject = -1 for the matlab protocol
    num_gt: np.ndarray  # (K,)
    ap: np.ndarray  # (K,)
    max_recall: np.ndarray  # (K,)
    num_det: np.ndarray  # (K,) detections scored for the class
    num_tp: np.ndarray  # (K,) true positives of the class
    split: np.ndarray  # (K,) 1 = rare / unseen, 0 = non-rare / seen, -1 = in neither list
    curves: dict  # class index -> (rec, prec)
    summary: dict


def key_segments(sorted_keys: np.ndarray, keys: np.ndarray):
    """[lo, hi) of each key in ``sorted_keys`` (empty where absent), with one search of the distinct keys."""
    if len(sorted_keys) == 0:
        z = np.zeros(len(keys), np.int64)
        return z, z
    head = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    uniq = sorted_keys[head]
    end = np.r_[head[1:], len(sorted_keys)]
    pos = np.minimum(np.searchsorted(uniq, keys), len(uniq) - 1)
    found = uniq[pos] == keys
    lo = np.where(found, head[pos], 0)
    hi = np.where(found, end[pos], 0)
    return lo, hi


def evaluate_hoi(gt: HOIGroundTruth, cand: HOICandidates, num_objects: int, num_verbs: int,
                 protocol: str = "qpic", rare_pairs=None, nonrare_pairs=None, rare_triplets=None,
                 nonrare_triplets=None, known_object: bool = False, pred_box_offset: float | None = None,
                 class_pairs=None, keep_curves: bool = True, split_names=("rare", "non_rare")) -> HOIResult:
    """Match candidates to the ground truth and compute per-class AP and the mAP summary.

    Args:
        gt: ground truth; cand: candidates (already top-k / NMS filtered) in (image, rank) order.
        num_objects, num_verbs: label space sizes (label ids are contiguous).
        protocol: "qpic" or "matlab" (see the module docstring).
        rare_triplets / nonrare_triplets: iterables of (sub, obj, verb) (qpic) -- or rare_pairs /
            nonrare_pairs: iterables of (verb, obj), applied whatever the subject. Used for the split.
        known_object: keep a class's detections only in images whose GT hois contain its object.
        pred_box_offset: added to predicted boxes (default 0 for qpic, 1 for matlab).
        class_pairs: matlab only: (K, 2) (verb, obj) classes; default = all correct-mat-valid pairs in
            (object, verb) order, must be given by the caller (from correct_mat).
        split_names: names of the two class subsets in the summary (("unseen", "seen") for zero-shot).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    O, V = int(num_objects), int(num_verbs)
    matlab = protocol == "matlab"
    if pred_box_offset is None:
        pred_box_offset = 1.0 if matlab else 0.0
    n_img = gt.num_images
    hoi_img = np.repeat(np.arange(n_img), np.diff(gt.hoi_offsets))
    g_sub_lab = gt.labels[gt.hoi_sub]
    g_obj_lab = gt.labels[gt.hoi_obj]
    g_verb = gt.hoi_verb

    # ---- classes and GT counts
    if matlab:
        if class_pairs is None:
            raise ValueError("matlab protocol needs class_pairs (the valid (verb, object) pairs)")
        class_pairs = np.asarray(class_pairs, np.int64).reshape(-1, 2)
        class_codes = class_pairs[:, 1] * V + class_pairs[:, 0]
        gt_codes = g_obj_lab * V + g_verb
        cand_codes = cand.obj_labels * V + cand.verbs
        classes = np.stack([np.full(len(class_pairs), -1), class_pairs[:, 1], class_pairs[:, 0]], 1)
    else:
        gt_codes = (g_sub_lab * O + g_obj_lab) * V + g_verb
        # distinct GT triplets in order of first appearance (the official gt_triplets list)
        uniq, first = np.unique(gt_codes, return_index=True)
        class_codes = uniq[np.argsort(first, kind="stable")]
        cand_codes = (cand.sub_labels * O + cand.obj_labels) * V + cand.verbs
        classes = np.stack([class_codes // (O * V), (class_codes // V) % O, class_codes % V], 1)
    code_sorter = np.argsort(class_codes, kind="stable")
    sorted_codes = class_codes[code_sorter]
    pos = np.searchsorted(sorted_codes, cand_codes)
    pos_c = np.minimum(pos, max(len(sorted_codes) - 1, 0))
    in_classes = (pos < len(sorted_codes)) & (sorted_codes[pos_c] == cand_codes) if len(sorted_codes) else \
        np.zeros(len(cand), bool)
    cand_class = np.where(in_classes, code_sorter[pos_c] if len(sorted_codes) else 0, -1)
    gpos = np.searchsorted(sorted_codes, gt_codes)
    gt_class = code_sorter[np.minimum(gpos, max(len(sorted_codes) - 1, 0))] if len(sorted_codes) else gpos
    if matlab:
        ok = (gpos < len(sorted_codes)) & (sorted_codes[np.minimum(gpos, max(len(sorted_codes) - 1, 0))] == gt_codes) \
            if len(sorted_codes) else np.zeros(len(gt_codes), bool)
        if (~ok).any():
            logger.warning("%d ground-truth hois are of (verb, object) pairs outside correct_mat; ignored by the "
                           "matlab protocol", int((~ok).sum()))
        num_gt = np.bincount(gt_class[ok], minlength=len(class_codes))
    else:
        num_gt = np.bincount(gt_class, minlength=len(class_codes)) if len(gt_codes) else np.zeros(0, np.int64)

    # ---- which candidates are scored
    record = cand_class >= 0
    if not matlab:  # images without any GT box are skipped (list-vs-tuple quirk)
        has_boxes = np.diff(gt.box_offsets) > 0
        record &= has_boxes[cand.image]
    if known_object:
        present = np.unique(hoi_img * O + g_obj_lab)
        record &= np.isin(cand.image * O + cand.obj_labels, present)
    rec_idx = np.nonzero(record)[0]

    # ---- join candidates with GT hois of the same image, object label and verb
    gt_key = (hoi_img * O + g_obj_lab) * V + g_verb
    gsort = np.argsort(gt_key, kind="stable")  # keeps the hoi order inside a key
    gkeys = gt_key[gsort]
    ckey = (cand.image[rec_idx] * O + cand.obj_labels[rec_idx]) * V + cand.verbs[rec_idx]
    lo, hi = key_segments(gkeys, ckey)
    cnt = hi - lo
    pair_c = np.repeat(rec_idx, cnt)
    start = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
    pair_h = gsort[start + np.arange(len(pair_c))]
    if not matlab:  # subject label must match too (category check of compute_IOU)
        m = g_sub_lab[pair_h] == cand.sub_labels[pair_c]
        pair_c, pair_h = pair_c[m], pair_h[m]
    gsb, gob = gt.boxes[gt.hoi_sub[pair_h]], gt.boxes[gt.hoi_obj[pair_h]]
    psb, pob = cand.sub_boxes[pair_c], cand.obj_boxes[pair_c]
    if matlab:
        gsb, gob = gsb.astype(np.float64), gob.astype(np.float64)
        psb, pob = psb.astype(np.float64) + pred_box_offset, pob.astype(np.float64) + pred_box_offset
        ov = np.minimum(iou_voc(gsb, psb), iou_voc(gob, pob))
        valid = ov >= 0.5
    else:
        if pred_box_offset:
            psb, pob = psb + pred_box_offset, pob + pred_box_offset
        ious = iou_qpic(gsb, psb).astype(np.float64)
        iouo = iou_qpic(gob, pob).astype(np.float64)
        valid = (ious >= 0.5) & (iouo >= 0.5)
        ov = np.minimum(ious, iouo)
    pair_c, pair_h, ov = pair_c[valid], pair_h[valid], ov[valid]
    # best GT per candidate: largest overlap, first hoi (in image order) on ties
    o = np.lexsort((pair_h, -ov, pair_c))
    pair_c, pair_h = pair_c[o], pair_h[o]
    first = np.ones(len(pair_c), bool)
    first[1:] = pair_c[1:] != pair_c[:-1]
    target = np.full(len(cand), -1, np.int64)
    target[pair_c[first]] = pair_h[first]
    # greedy in (image, rank) order without fallback: TP = first candidate aiming at a GT hoi
    tgt = target[rec_idx]
    tp = np.zeros(len(rec_idx), np.int64)
    hit = np.nonzero(tgt >= 0)[0]
    _, first_hit = np.unique(tgt[hit], return_index=True)
    tp[hit[first_hit]] = 1

    # ---- per-class AP (all classes at once; bit-identical to the per-class sort + cumsum + 11 points)
    rc = cand_class[rec_idx]
    thresholds = MATLAB_COLON_THRESHOLDS if matlab else NUMPY_ARANGE_THRESHOLDS
    K = len(class_codes)
    ap, max_rec, curves = per_class_eleven_point_ap(rc, cand.scores[rec_idx], tp, num_gt, thresholds, stable=matlab,
                                                    keep_curves=keep_curves)
    num_det = np.bincount(rc, minlength=K).astype(np.int64) if len(rc) else np.zeros(K, np.int64)
    num_tp = np.bincount(rc, weights=tp, minlength=K).astype(np.int64)
    if curves is None:
        curves = {}

    # ---- rare / non-rare split
    split = np.full(K, -1, np.int64)
    if rare_triplets is not None or nonrare_triplets is not None:
        rare_set = {tuple(int(x) for x in t) for t in (rare_triplets or [])}
        non_set = {tuple(int(x) for x in t) for t in (nonrare_triplets or [])}
        for k, (s, ob, v) in enumerate(classes.tolist()):
            split[k] = 1 if (s, ob, v) in rare_set else 0 if (s, ob, v) in non_set else -1
    if rare_pairs is not None or nonrare_pairs is not None:
        rare_set = {tuple(int(x) for x in t) for t in (rare_pairs or [])}
        non_set = {tuple(int(x) for x in t) for t in (nonrare_pairs or [])}
        for k, (_, ob, v) in enumerate(classes.tolist()):
            if split[k] == -1:
                split[k] = 1 if (v, ob) in rare_set else 0 if (v, ob) in non_set else -1
    neither = int((split == -1).sum())
    if neither and (rare_triplets is not None or rare_pairs is not None):
        logger.warning("%d classes are in neither the %s nor the %s list; they count in Full only", neither,
                       *split_names)

    def mean(vals):
        vals = list(vals)
        if not vals:
            return float("nan")
        return float(np.mean(vals))

    if matlab:
        no_gt = int((num_gt == 0).sum())
        if no_gt:
            logger.warning("%d matlab classes have no ground truth; they score AP 0 (as in VOCevaldet_bboxpair)",
                           no_gt)
    summary = {
        "mAP": mean(ap.tolist()),
        f"mAP_{split_names[0]}": mean(ap[split == 1].tolist()),
        f"mAP_{split_names[1]}": mean(ap[split == 0].tolist()),
        "mean_max_recall": mean(max_rec.tolist()),
        "num_classes": float(K),
        f"num_classes_{split_names[0]}": float((split == 1).sum()),
        f"num_classes_{split_names[1]}": float((split == 0).sum()),
    }
    return HOIResult(protocol, classes, num_gt, ap, max_rec, num_det, num_tp, split, curves, summary)


# ------------------------------------------------------------------------------ scoring and reports


def _class_pairs(correct_mat: np.ndarray) -> np.ndarray:
    """Valid (verb, object) pairs of correct_mat in (object, verb) order: the matlab class list."""
    v, o = np.nonzero(np.asarray(correct_mat) != 0)
    order = np.lexsort((v, o))
    return np.stack([v[order], o[order]], 1)


def score_hico(gt: HOIGroundTruth, cand: HOICandidates, correct_mat: np.ndarray, *, protocol: str = "qpic",
               train_counts: Counter | None = None, rare_pairs=None, nonrare_pairs=None, zero_shot=None,
               nms: bool = False, nms_thresh: float = 0.7, nms_alpha: float = 1.0, nms_beta: float = 0.5,
               known_object: bool = False, pred_box_offset: float | None = None,
               keep_curves: bool = True) -> HOIResult:
    """Score candidates (already cut to the top-k) under ``protocol`` and return the per-class result.

    The rare split comes from ``train_counts`` (training hoi count per (subject, object, verb) triplet:
    rare < 10; the matlab protocol sums over subjects per (object, verb) class and counts classes absent
    from training as rare) or from explicit (verb, object) ``rare_pairs`` / ``nonrare_pairs``.
    ``zero_shot`` = (unseen pairs, seen pairs or None) replaces it by Unseen / Seen.
    """
    correct_mat = np.asarray(correct_mat)
    nv, no = correct_mat.shape
    if nms:
        cand = apply_triplet_nms(cand, no, nv, nms_thresh, nms_alpha, nms_beta)
    kw = dict(num_objects=no, num_verbs=nv, protocol=protocol, known_object=known_object,
              pred_box_offset=pred_box_offset, keep_curves=keep_curves)
    if protocol == "matlab":
        kw["class_pairs"] = _class_pairs(correct_mat)
    if zero_shot is not None:
        unseen, seen = zero_shot
        if seen is None:
            us = {tuple(p) for p in unseen}
            seen = [tuple(p) for p in _class_pairs(correct_mat).tolist() if tuple(p) not in us]
        return evaluate_hoi(gt, cand, rare_pairs=unseen, nonrare_pairs=seen, split_names=("unseen", "seen"), **kw)
    rare_t = non_t = None
    if train_counts is not None:
        if protocol == "qpic":
            rare_t = [t for t, c in train_counts.items() if c < 10]
            non_t = [t for t, c in train_counts.items() if c >= 10]
        else:
            pair_counts = Counter()
            for (_, o, v), c in train_counts.items():
                pair_counts[(v, o)] += c
            cls = [tuple(p) for p in _class_pairs(correct_mat).tolist()]
            rare_pairs = [p for p in cls if pair_counts[p] < 10]
            nonrare_pairs = [p for p in cls if pair_counts[p] >= 10]
    return evaluate_hoi(gt, cand, rare_triplets=rare_t, nonrare_triplets=non_t, rare_pairs=rare_pairs,
                        nonrare_pairs=nonrare_pairs, **kw)


def result_rows(result: HOIResult, object_names=None, verb_names=None, train_counts=None, split_names=None):
    """Per-class rows for the CSV: class, names, GT count, training count, AP, max recall, split."""
    split_names = split_names or ("rare", "non_rare")
    rows, names, counts = [], [], []
    pair_counts = Counter()
    if train_counts:
        for (_, o, v), c in train_counts.items():
            pair_counts[(v, o)] += c
    for k, (s, o, v) in enumerate(result.classes.tolist()):
        oname = object_names[o] if object_names is not None else str(o)
        vname = verb_names[v] if verb_names is not None else str(v)
        sname = (object_names[s] if object_names is not None else str(s)) if s >= 0 else "*"
        if train_counts is None:
            n_train = -1
        elif s >= 0:
            n_train = int(train_counts.get((s, o, v), 0))
        else:
            n_train = int(pair_counts.get((v, o), 0))
        split = {1: split_names[0], 0: split_names[1]}.get(int(result.split[k]), "")
        name = f"{sname} {vname} {oname}"
        names.append(name)
        counts.append(n_train)
        rows.append({"class": name, "subject": s, "object": o, "verb": v, "num_gt": int(result.num_gt[k]),
                     "num_train": n_train, "num_det": int(result.num_det[k]), "ap": float(result.ap[k]),
                     "max_recall": float(result.max_recall[k]), "split": split})
    return rows, names, (np.asarray(counts) if train_counts is not None else None)


CSV_COLUMNS = ["class", "subject", "object", "verb", "num_gt", "num_train", "num_det", "ap", "max_recall", "split"]


def write_reports(output_dir, result: HOIResult, object_names=None, verb_names=None, train_counts=None,
                  prefix="hico", split_names=None) -> None:
    """Per-class CSV and PNG (AP vs training instances, best / worst PR curves) in ``output_dir``."""
    rows, names, counts = result_rows(result, object_names, verb_names, train_counts, split_names)
    out = Path(output_dir)
    write_per_class_csv(out / f"{prefix}_per_class_ap.csv", rows, CSV_COLUMNS)
    try:
        plot_per_class(out / f"{prefix}_per_class_ap.png", names, result.ap, counts, result.curves,
                       title=f"{result.protocol} protocol")
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        logger.warning("matplotlib missing: no per-class plot")
