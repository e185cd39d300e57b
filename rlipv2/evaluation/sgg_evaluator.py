"""Detectron2 DatasetEvaluators for scene-graph generation: ``OISGGEvaluator`` and ``VGSGGEvaluator``.

Both keep, per image, only the queries that enter the top-``keep`` (pair, predicate) triplets (boxes,
labels and their full relation-score rows: compact numpy arrays), gather them to rank 0, and score
them against the ``DatasetCatalog`` dicts (contract 1) of the processed images. Model outputs follow
contract 4 (``relation_scores`` already include the subject and object scores).
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
from detectron2.evaluation import DatasetEvaluator

from .hico_core import HOIGroundTruth, topk_stable
from .hico_io import write_json_atomic, write_npz_atomic
from .oi_core import evaluate_oi, write_oi_reports
from .plots import plot_per_class, write_per_class_csv
from .units import is_count
from .vg import VGRecallAccumulator

logger = logging.getLogger(__name__)


def _percent_text(metrics: dict) -> str:
    """Metrics for the log: percent with two decimals (counts as they are); returned dicts keep fractions."""
    return ", ".join(f"{k} {v:.0f}" if is_count(k) else f"{k} {100 * float(v):.2f}%" for k, v in metrics.items())


def _percent_text(metrics: dict) -> str:
    """Metrics for the log: percent with two decimals (counts as they are); returned dicts keep fractions."""
    return ", ".join(f"{k} {v:.0f}" if is_count(k) else f"{k} {100 * float(v):.2f}%" for k, v in metrics.items())

__all__ = ["OISGGEvaluator", "VGSGGEvaluator"]


def _gt_images(dataset_name, names):
    from detectron2.data import DatasetCatalog
    from detectron2.structures import BoxMode

    wanted = set(names)
    images = []
    for d in DatasetCatalog.get(dataset_name):
        if d["file_name"] not in wanted:
            continue
        anns = d.get("annotations", [])
        boxes = np.array([BoxMode.convert(list(a["bbox"]), a.get("bbox_mode", BoxMode.XYXY_ABS), BoxMode.XYXY_ABS)
                          for a in anns], np.float64).reshape(-1, 4)
        rels = [r for r in d.get("relations", []) if r["object"] >= 0]
        images.append({"file_name": d["file_name"], "boxes": boxes,
                       "labels": np.array([a["category_id"] for a in anns], np.int64),
                       "hois": np.array([[r["subject"], r["object"], r["predicate"]] for r in rels],
                                        np.int64).reshape(-1, 3)})
    unknown = wanted - {im["file_name"] for im in images}
    if unknown:
        raise KeyError(f"{dataset_name}: predictions for {len(unknown)} images that are not in the dataset, "
                       f"e.g. {sorted(unknown)[:3]}")
    return images


class _SGGEvaluatorBase(DatasetEvaluator):
    task = "sgg"

    def __init__(self, dataset_name: str, output_dir: str | None = None, *, keep_per_image: int = 200,
                 distributed: bool = True):
        from detectron2.data import MetadataCatalog

        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.keep = int(keep_per_image)
        self.distributed = distributed
        self.meta = MetadataCatalog.get(dataset_name)
        self.object_names = list(getattr(self.meta, "thing_classes", []) or [])
        self.predicate_names = list(getattr(self.meta, "predicate_classes", []) or [])
        self.reset()

    def reset(self):
        self._predictions = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            inst = out["instances"].to("cpu")
            boxes = inst.pred_boxes.tensor.numpy().astype(np.float32)
            labels = inst.pred_classes.numpy().astype(np.int64)
            pairs = out["pairs"]
            sub = np.asarray(pairs["subject"].cpu(), np.int64)
            obj = np.asarray(pairs["object"].cpu(), np.int64)
            rs = pairs["relation_scores"].detach().cpu().numpy()
            name = inp.get("file_name", str(inp.get("image_id")))
            shown = f"image {inp.get('image_id')}" + (f" ({inp['file_name']})" if inp.get("file_name") else "")
            if rs.ndim != 2 or (self.predicate_names and rs.shape[1] != len(self.predicate_names)):
                raise ValueError(f"model output for {shown}: relation_scores must be (Q, {len(self.predicate_names)}),"
                                 f" got {rs.shape}")
            if not np.isfinite(rs).all():
                raise ValueError(f"model output for {shown}: relation_scores contain NaN or inf")
            if len(sub) != rs.shape[0] or len(obj) != rs.shape[0]:
                raise ValueError(f"model output for {shown}: pairs subject/object must have {rs.shape[0]} entries")
            flat = rs.reshape(1, -1)
            top = topk_stable(flat, self.keep)[0] if flat.size else np.zeros(0, np.int64)
            q = self._queries(rs, top)
            self._predictions.append({"file_name": name, "sub_boxes": boxes[sub[q]], "obj_boxes": boxes[obj[q]],
                                      "sub_labels": labels[sub[q]], "obj_labels": labels[obj[q]],
                                      "rel_scores": rs[q].astype(np.float32)})

    def _queries(self, rs, top):
        return np.unique(top // rs.shape[1])

    def _gather(self):
        if not self.distributed:
            preds = self._predictions
        else:
            from detectron2.utils import comm

            comm.synchronize()
            parts = comm.gather(self._predictions, dst=0)
            if not comm.is_main_process():
                return None
            preds = [p for part in parts for p in part]
        uniq = OrderedDict()
        for p in preds:
            uniq.setdefault(p["file_name"], p)
        return uniq

    @staticmethod
    def _raw(p):
        """Per-query arrays (boxes (2Q', 4), labels, rel_scores, sub_ids, obj_ids) of a compact record."""
        n = len(p["rel_scores"])
        return (np.concatenate([p["sub_boxes"], p["obj_boxes"]]).reshape(-1, 4),
                np.concatenate([p["sub_labels"], p["obj_labels"]]), p["rel_scores"], np.arange(n),
                np.arange(n, 2 * n))


class OISGGEvaluator(_SGGEvaluatorBase):
    """Open Images v6 SGG evaluator: ``protocol="rlipv2"`` (official RLIPv2 oi_sgg_eval.py, default) or
    ``"gcl"`` (BGNN / PySGG). Returns ``{"oi": {"R@50", "wmAP_rel", "wmAP_phr", "score_wtd", ...}}``."""

    def __init__(self, dataset_name, output_dir=None, *, protocol: str = "rlipv2", use_nms: bool = True,
                 keep_per_image: int = 200, distributed: bool = True):
        if protocol not in ("rlipv2", "gcl"):
            raise ValueError(f"protocol must be 'rlipv2' or 'gcl', got {protocol!r}")
        self.protocol = protocol
        self.use_nms = use_nms
        super().__init__(dataset_name, output_dir, keep_per_image=keep_per_image, distributed=distributed)

    def evaluate(self):
        uniq = self._gather()
        if uniq is None:
            return {}
        if not uniq:
            return {}
        gt = HOIGroundTruth.from_images(_gt_images(self.dataset_name, list(uniq)))
        raw = [(gt.index_of(n), *self._raw(p), n) for n, p in uniq.items()]
        num_objects = len(self.object_names) or int(max(gt.labels.max(initial=0), 0)) + 1
        num_rels = raw[0][3].shape[1] if raw else len(self.predicate_names)
        res = evaluate_oi(gt, raw, num_objects, num_rels, self.protocol, nms=self.use_nms)
        if self.output_dir:
            out = Path(self.output_dir)
            write_json_atomic(out / "oi_results.json", {"protocol": self.protocol, "oi": res["oi"]})
            _write_sgg_npz(out / "oi_predictions.npz", list(uniq.items()), "rel_scores")
            write_oi_reports(out, res["per_class"], self.protocol)
        logger.info("Open Images [%s protocol], percent: %s", self.protocol, _percent_text(res["oi"]))
        return {"oi": {k: float(v) for k, v in res["oi"].items()}}


class VGSGGEvaluator(_SGGEvaluatorBase):
    """Visual Genome SGDet evaluator (Scene-Graph-Benchmark semantics): R@20/50/100, ngR@K, mR@K and, when
    the metadata has ``zero_shot_triplets`` ((subject, object, predicate) label triplets), zR@K.
    Returns ``{"sgg": {"R@20": ..., "mR@100": ..., ...}}`` and writes a per-predicate recall CSV / PNG."""

    def _queries(self, rs, top):
        # graph-constrained top-100 pairs (argmax predicate) and the no-graph-constraint top-k
        best = rs.max(1)
        pairs = np.argsort(-best, kind="stable")[:100]
        return np.unique(np.concatenate([pairs, top // rs.shape[1]]))

    def evaluate(self):
        uniq = self._gather()
        if not uniq:
            return {}
        images = {im["file_name"]: im for im in _gt_images(self.dataset_name, list(uniq))}
        num_rels = len(self.predicate_names) or next(iter(uniq.values()))["rel_scores"].shape[1]
        acc = VGRecallAccumulator(num_rels, getattr(self.meta, "zero_shot_triplets", None))
        for name, p in uniq.items():
            g = images[name]
            boxes, labels, rs, sub, obj = self._raw(p)
            acc.add_image(g["boxes"], g["labels"], g["hois"], boxes, labels, sub, obj, rs)
        res = acc.summary()
        if self.output_dir:
            out = Path(self.output_dir)
            write_json_atomic(out / "vg_results.json", res)
            rec = acc.per_predicate_recall(100)
            names = self.predicate_names or [str(i) for i in range(num_rels)]
            counts = getattr(self.meta, "predicate_frequencies", None)
            rows = [{"predicate": n, "R@100": float(r)} for n, r in zip(names, rec)]
            write_per_class_csv(out / "vg_per_predicate_recall.csv", rows, ["predicate", "R@100"])
            plot_per_class(out / "vg_per_predicate_recall.png", names, rec,
                           np.asarray(counts) if counts is not None else None, {}, metric="R@100")
        logger.info("Visual Genome SGDet, percent: %s", _percent_text(res))
        return {"sgg": {k: float(v) for k, v in res.items()}}


def _write_sgg_npz(path, records, score_key):
    def arrays():
        yield "file_names", np.array([n for n, _ in records])
        for i, (_, p) in enumerate(records):
            n = len(p["rel_scores"])
            yield f"boxes_{i}", np.concatenate([p["sub_boxes"], p["obj_boxes"]]).reshape(-1, 4)
            yield f"labels_{i}", np.concatenate([p["sub_labels"], p["obj_labels"]])
            yield f"{score_key}_{i}", p["rel_scores"]
            yield f"sub_ids_{i}", np.arange(n)
            yield f"obj_ids_{i}", np.arange(n, 2 * n)

    write_npz_atomic(path, arrays())
