"""``HICOEvaluator``: the Detectron2 DatasetEvaluator for HICO-DET-style HOI detection.

Layering: it imports the scoring core (``hico_core``, ``hico_io``) only, like the CLI (``hico.py``), so
that offline scoring never imports torch or detectron2 and neither layer imports the other.
``rlipv2.evaluation.HICOEvaluator`` resolves here.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
from detectron2.evaluation import DatasetEvaluator

from .hico_core import PROTOCOLS, HOICandidates, HOIGroundTruth, score_hico, topk_stable, write_reports
from .hico_io import write_hico_npz, write_json_atomic

logger = logging.getLogger(__name__)

__all__ = ["HICOEvaluator"]


class HICOEvaluator(DatasetEvaluator):
    """Detectron2 DatasetEvaluator for HICO-DET-style HOI detection (any object / verb vocabulary).

    ``process()`` keeps, per image, only the top ``keep_per_image`` triplets of
    ``relation_scores * correct_mat`` as compact numpy arrays; ``evaluate()`` gathers them to rank 0
    (``comm.gather``), scores them under ``protocol`` against the ``DatasetCatalog`` dicts of the images
    that were processed, writes ``hico_predictions.npz`` (the raw per-query format of the CLI, so a run
    can be re-scored offline), ``hico_results.json`` and the per-class CSV / PNG into ``output_dir``,
    and returns ``{"hoi": {"mAP": ..., "mAP_rare": ..., "mAP_non_rare": ..., "mean_max_recall": ...}}``
    (``mAP_unseen`` / ``mAP_seen`` for zero-shot), as fractions (0-1); the log line says them in percent.
    Non-main ranks return ``{}``.

    ``hico_predictions.npz`` describes itself (``meta_*`` arrays: vocabulary texts and ids, the
    correct-mat, the rare split and its source, protocol, top-k, NMS, Known-Object, zero-shot split,
    the dataset's annotation file), so that ``python -m rlipv2.evaluation.hico --pred
    hico_predictions.npz`` re-scores it with the same numbers and no other flag.

    Metadata used: ``correct_mat`` (default: all ones), ``rare_triplets`` / ``nonrare_triplets``
    ((predicate, object) pairs), ``zero_shot_unseen_triplets`` (when ``zero_shot=True``),
    ``thing_classes``, ``predicate_classes``, ``thing_dataset_id_to_contiguous_id`` (npz label ids).
    """

    def __init__(self, dataset_name: str, output_dir: str | None = None, *, protocol: str = "qpic",
                 top_k: int | None = None, keep_per_image: int | None = None, use_nms: bool = False,
                 nms_thresh: float = 0.7, nms_alpha: float = 1.0, nms_beta: float = 0.5,
                 known_object: bool = False, zero_shot: bool = False, distributed: bool = True,
                 write_outputs: bool = True):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        from detectron2.data import MetadataCatalog

        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.protocol = protocol
        # the protocol's per-image rule unless given: 100 for qpic, no cap for matlab (as the CLI)
        self.top_k = int(top_k) if top_k is not None else {"qpic": 100, "matlab": 0}[protocol]
        self.keep = int(keep_per_image) if keep_per_image is not None else self.top_k
        if self.top_k > 0 and 0 < self.keep < self.top_k:
            raise ValueError("keep_per_image must be >= top_k")
        self.nms = dict(nms=use_nms, nms_thresh=nms_thresh, nms_alpha=nms_alpha, nms_beta=nms_beta)
        self.known_object = known_object
        self.zero_shot = zero_shot
        self.distributed = distributed
        self.write_outputs = write_outputs
        self.meta = MetadataCatalog.get(dataset_name)
        self.object_names = list(getattr(self.meta, "thing_classes", []) or [])
        self.verb_names = list(getattr(self.meta, "predicate_classes", []) or [])
        cm = getattr(self.meta, "correct_mat", None)
        if cm is None:
            if not (self.object_names and self.verb_names):
                raise ValueError(f"{dataset_name}: metadata needs correct_mat or thing_classes + predicate_classes")
            logger.warning("%s: no correct_mat in the metadata; every (verb, object) pair is valid", dataset_name)
            cm = np.ones((len(self.verb_names), len(self.object_names)))
        self.correct_mat = np.asarray(cm)
        self.num_verbs, self.num_objects = self.correct_mat.shape
        self.valid_T = self.correct_mat.T != 0
        self.reset()

    def reset(self):
        self._predictions = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            inst = out["instances"].to("cpu")
            boxes = inst.pred_boxes.tensor.numpy()
            labels = inst.pred_classes.numpy().astype(np.int64)
            pairs = out["pairs"]
            sub = np.asarray(pairs["subject"].cpu() if hasattr(pairs["subject"], "cpu") else pairs["subject"],
                             np.int64)
            obj = np.asarray(pairs["object"].cpu() if hasattr(pairs["object"], "cpu") else pairs["object"], np.int64)
            rs = pairs["relation_scores"]
            rs = rs.detach().cpu().numpy() if hasattr(rs, "detach") else np.asarray(rs)
            name = inp.get("file_name", str(inp.get("image_id")))
            shown = f"image {inp.get('image_id')}" + (f" ({inp['file_name']})" if inp.get("file_name") else "")
            where = f"model output for {shown}"
            q = rs.shape[0] if rs.ndim == 2 else -1
            if rs.ndim != 2 or rs.shape[1] != self.num_verbs:
                raise ValueError(f"{where}: relation_scores must be (Q, {self.num_verbs}), got {rs.shape}")
            if sub.shape != (q,) or obj.shape != (q,):
                raise ValueError(f"{where}: pairs subject/object must be ({q},)")
            if not np.isfinite(rs).all():
                raise ValueError(f"{where}: relation_scores contain NaN or inf")
            if q and (min(sub.min(), obj.min()) < 0 or max(sub.max(), obj.max()) >= len(boxes)):
                raise ValueError(f"{where}: pair indices out of range [0, {len(boxes)})")
            if len(labels) and (labels.min() < 0 or labels.max() >= self.num_objects):
                raise ValueError(f"{where}: pred_classes out of range [0, {self.num_objects})")
            if self.protocol == "matlab" and q:
                # the MATLAB protocol scores valid (verb, object) pairs only: keep the top ones of those
                # (all of them without a cap), as the CLI selects them
                scores = np.where(self.valid_T[labels[obj]], rs, np.array(-np.inf, rs.dtype))
            else:
                scores = rs * self.valid_T[labels[obj]].astype(rs.dtype) if q else rs
            flat = scores.reshape(1, -1)
            top = topk_stable(flat, self.keep)[0] if flat.size else np.zeros(0, np.int64)
            if self.protocol == "matlab":
                top = top[np.isfinite(flat[0, top])]
            qi, vi = np.divmod(top, self.num_verbs)
            self._predictions.append({
                "file_name": name, "image_id": inp.get("image_id"),
                "sub_boxes": boxes[sub[qi]].astype(np.float32), "obj_boxes": boxes[obj[qi]].astype(np.float32),
                "sub_labels": labels[sub[qi]], "obj_labels": labels[obj[qi]], "verbs": vi.astype(np.int64),
                "scores": flat[0, top], "query": qi.astype(np.int64)})

    # -- evaluate
    def _gather(self):
        if not self.distributed:
            return self._predictions
        from detectron2.utils import comm

        comm.synchronize()
        gathered = comm.gather(self._predictions, dst=0)
        if not comm.is_main_process():
            return None
        return [p for part in gathered for p in part]

    def _ground_truth(self, names):
        from detectron2.data import DatasetCatalog
        from detectron2.structures import BoxMode

        dicts = DatasetCatalog.get(self.dataset_name)
        wanted = set(names)
        images = []
        for d in dicts:
            if d["file_name"] not in wanted:
                continue
            anns = d.get("annotations", [])
            boxes = np.array([BoxMode.convert(list(a["bbox"]), a.get("bbox_mode", BoxMode.XYXY_ABS),
                                              BoxMode.XYXY_ABS) for a in anns], np.float64).reshape(-1, 4)
            labels = np.array([a["category_id"] for a in anns], np.int64)
            rels = [r for r in d.get("relations", []) if r["object"] >= 0]
            hois = np.array([[r["subject"], r["object"], r["predicate"]] for r in rels], np.int64).reshape(-1, 3)
            images.append({"file_name": d["file_name"], "boxes": boxes, "labels": labels, "hois": hois})
        found = {im["file_name"] for im in images}
        unknown = wanted - found
        if unknown:
            raise KeyError(f"{self.dataset_name}: predictions for {len(unknown)} images that are not in the dataset, "
                           f"e.g. {sorted(unknown)[:3]}")
        if len(images) < len(dicts):
            logger.info("%s: evaluating %d of %d images (those processed)", self.dataset_name, len(images), len(dicts))
        box_dtype = np.float32 if self.protocol == "qpic" else np.float64
        return HOIGroundTruth.from_images(images, box_dtype=box_dtype)

    def evaluate(self):
        preds = self._gather()
        if preds is None:
            return {}
        # de-duplicate (inference samplers pad the last batch with repeats)
        uniq = OrderedDict()
        for p in preds:
            uniq.setdefault(p["file_name"], p)
        if not uniq:
            logger.warning("%s: no predictions to evaluate", self.dataset_name)
            return {}
        gt = self._ground_truth(list(uniq))
        cand = self._candidates(gt, uniq)
        zero_shot = rare_pairs = non_pairs = None
        if self.zero_shot:
            unseen = getattr(self.meta, "zero_shot_unseen_triplets", None)
            if unseen is None:
                raise ValueError(f"{self.dataset_name}: zero_shot=True needs metadata zero_shot_unseen_triplets")
            zero_shot = ([tuple(p) for p in unseen], None)
        else:
            rare_pairs = getattr(self.meta, "rare_triplets", None)
            non_pairs = getattr(self.meta, "nonrare_triplets", None)
            rare_pairs = [tuple(p) for p in rare_pairs] if rare_pairs is not None else None
            non_pairs = [tuple(p) for p in non_pairs] if non_pairs is not None else None
        result = score_hico(gt, cand, self.correct_mat, protocol=self.protocol, rare_pairs=rare_pairs,
                            nonrare_pairs=non_pairs, zero_shot=zero_shot, known_object=self.known_object,
                            **self.nms)
        split = ("unseen", "seen") if self.zero_shot else ("rare", "non_rare")
        s = result.summary
        logger.info("HICO-DET %s [%s protocol%s]: mAP %.2f%% %s %.2f%% %s %.2f%% mean max recall %.2f%%",
                    self.dataset_name, self.protocol, ", known object" if self.known_object else "", 100 * s["mAP"],
                    split[0], 100 * s["mAP_" + split[0]], split[1], 100 * s["mAP_" + split[1]],
                    100 * s["mean_max_recall"])
        if self.output_dir and self.write_outputs:
            self._write(uniq, gt, result, split, rare_pairs, non_pairs, zero_shot)
        return {"hoi": {k: float(v) for k, v in s.items()}}

    def _candidates(self, gt, uniq) -> HOICandidates:
        parts = []
        for name, p in uniq.items():
            idx = gt.index_of(name)
            n = len(p["scores"])
            order = np.arange(n)
            if self.protocol == "matlab":
                order = order[self.valid_T[p["obj_labels"], p["verbs"]]] if n else order
            if self.top_k > 0:
                order = order[: self.top_k]
            parts.append(HOICandidates(np.full(len(order), idx, np.int64), p["sub_boxes"][order],
                                       p["obj_boxes"][order], p["sub_labels"][order], p["obj_labels"][order],
                                       p["verbs"][order], p["scores"][order], p["query"][order]))
        return HOICandidates.concatenate(parts)

    def _id_table(self, key: str, n: int) -> np.ndarray:
        """Contiguous id -> dataset id from a ``*_dataset_id_to_contiguous_id`` metadata map."""
        table = np.arange(n)
        id_map = getattr(self.meta, key, None)
        if id_map:
            for ds, c in id_map.items():
                table[int(c)] = int(ds)
        return table

    def prediction_meta(self, rare_pairs=None, non_pairs=None, zero_shot=None) -> dict:
        """The self-description stored in ``hico_predictions.npz`` (``hico_io.PREDICTION_META``)."""
        pairs = lambda ps: np.asarray([tuple(p) for p in ps], np.int64).reshape(-1, 2)  # noqa: E731
        meta = {
            "format_version": 1,
            "object_ids": self._id_table("thing_dataset_id_to_contiguous_id", self.num_objects),
            "verb_ids": self._id_table("predicate_dataset_id_to_contiguous_id", self.num_verbs),
            "correct_mat": (self.correct_mat != 0).astype(np.uint8),
            "protocol": self.protocol, "top_k": self.top_k,
            "nms": np.array([float(self.nms["nms"]), self.nms["nms_thresh"], self.nms["nms_alpha"],
                             self.nms["nms_beta"]], np.float64),
            "known_object": int(self.known_object),
        }
        if len(self.object_names) == self.num_objects and len(self.verb_names) == self.num_verbs:
            meta["object_names"], meta["verb_names"] = np.array(self.object_names), np.array(self.verb_names)
        if zero_shot is not None:
            meta["zero_shot_unseen"] = pairs(zero_shot[0])
        elif rare_pairs is not None:
            meta["rare_pairs"] = pairs(rare_pairs)
            meta["nonrare_pairs"] = pairs(non_pairs or [])
            meta["rare_source"] = str(getattr(self.meta, "rare_source", f"metadata rare_triplets of "
                                                                       f"{self.dataset_name}"))
        json_file = getattr(self.meta, "json_file", None)
        if json_file and getattr(self.meta, "annotation_format", "hico") == "hico":
            meta["gt_file"] = str(json_file)
        return meta

    def _write(self, uniq, gt, result, split, rare_pairs=None, non_pairs=None, zero_shot=None):
        out = Path(self.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_hico_npz(out / "hico_predictions.npz", list(uniq.values()), self.num_verbs,
                       self._id_table("thing_dataset_id_to_contiguous_id", self.num_objects),
                       meta=self.prediction_meta(rare_pairs, non_pairs, zero_shot))
        write_json_atomic(out / "hico_results.json", {
            "protocol": self.protocol, "setting": "known_object" if self.known_object else "default",
            "zero_shot": self.zero_shot, "top_k": self.top_k, "nms": self.nms, "num_images": gt.num_images,
            "unit": "fraction (0-1)", "hoi": result.summary})
        write_reports(out, result, self.object_names or None, self.verb_names or None, None, "hico", split)
