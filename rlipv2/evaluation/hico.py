"""HICO-DET evaluation: the Detectron2 ``HICOEvaluator`` and the ``python -m rlipv2.evaluation.hico`` CLI.

Two protocols (see ``hico_core``): ``qpic`` (the official RLIPv2 / QPIC Python evaluator, with its
quirks) and ``matlab`` (ywchao/ho-rcnn ``VOCevaldet_bboxpair``, Default or Known-Object). Both report
mAP Full / Rare / Non-Rare (Unseen / Seen for zero-shot settings) and the mean max recall.

CLI::

    python -m rlipv2.evaluation.hico --gt test_hico.json --pred PRED.npz|PRED.json \
        --rare-from trainval_hico.json --correct-mat corre_hico.npy --protocol qpic --top-k 100 \
        [--nms --nms-thresh 0.7 --nms-alpha 1.0 --nms-beta 0.5] [--known-object] [--zero-shot UC-RF] \
        --json-out OUT.json
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np

from ..schemas.predictions import TRIPLET_JSON_SCHEMA, check_npz_array
from ..utils.cli import finite_float, nonnegative_float, nonnegative_int, unit_interval
from .hico_core import (
    PROTOCOLS,
    CandidateSelector,
    HOICandidates,
    HOIGroundTruth,
    HOIResult,
    apply_triplet_nms,
    evaluate_hoi,
    select_triplet_candidates,
)
from .hico_io import (
    IdMaps,
    NpzReader,
    gt_from_json,
    hico_zero_shot_pairs,
    load_correct_mat,
    load_json,
    train_counts_from_json,
    write_json_atomic,
    write_npz_atomic,
)
from .plots import plot_per_class, write_per_class_csv

logger = logging.getLogger(__name__)

__all__ = ["score_hico", "main", "write_hico_npz", "load_predictions"]


def _class_pairs(correct_mat: np.ndarray) -> np.ndarray:
    """Valid (verb, object) pairs of correct_mat in (object, verb) order: the matlab class list."""
    v, o = np.nonzero(np.asarray(correct_mat) != 0)
    order = np.lexsort((v, o))
    return np.stack([v[order], o[order]], 1)


def score_hico(gt: HOIGroundTruth, cand: HOICandidates, correct_mat: np.ndarray, *, protocol: str = "qpic",
               train_counts: Counter | None = None, rare_pairs=None, nonrare_pairs=None, zero_shot=None,
               nms: bool = False, nms_thresh: float = 0.7, nms_alpha: float = 1.0, nms_beta: float = 0.5,
               known_object: bool = False, pred_box_offset: float | None = None) -> HOIResult:
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
              pred_box_offset=pred_box_offset)
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


# ----------------------------------------------------------------------------------------------------- CLI


def load_predictions(pred_path, gt: HOIGroundTruth, ids: IdMaps, correct_mat, top_k: int, protocol: str,
                     json_ids: str = "dataset", allow_missing: bool = True) -> HOICandidates:
    """Candidates from a raw per-query .npz or a triplet JSON (see hico_io for the formats)."""
    pred_path = str(pred_path)
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0: no cap), got {top_k}")
    seen = set()

    def image_index(name, where):
        try:
            i = gt.index_of(name)
        except KeyError:
            raise KeyError(f"{where}: prediction for unknown image {name!r} (not in the ground truth)") from None
        if i in seen:
            raise ValueError(f"{where}: several prediction records for image {name!r}")
        seen.add(i)
        return i

    if pred_path.endswith(".npz"):
        z = NpzReader(pred_path)
        if "file_names" not in z:
            raise ValueError(f"{pred_path}: missing key 'file_names'")
        names = [str(n) for n in z["file_names"].tolist()]
        sel = CandidateSelector(correct_mat, top_k, protocol, label_lut=ids.lut)
        checked = set()
        for i, name in enumerate(names):
            where = f"{pred_path} image {i} ({name})"
            idx = image_index(name, where)
            try:
                boxes, labels, vs, sub, obj = (z[f"{k}_{i}"] for k in ("boxes", "labels", "verb_scores", "sub_ids",
                                                                       "obj_ids"))
            except KeyError as e:
                raise ValueError(f"{e.args[0]} (needed for image {i}, {name!r})") from None
            for k, arr in zip(("boxes", "labels", "verb_scores", "sub_ids", "obj_ids"), (boxes, labels, vs, sub, obj)):
                sig = (k, arr.dtype.str, arr.ndim, arr.size == 0)
                if sig not in checked:  # dtype and rank are all the schema checks: once per kind of array
                    check_npz_array(f"{k}_{i}", arr, where)
                    checked.add(sig)
            sel.add(idx, boxes, labels, vs, sub, obj, where=where)
        z.close()
        cand = sel.finish()
    elif pred_path.endswith(".json"):
        data = load_json(pred_path)
        TRIPLET_JSON_SCHEMA.validate(data, pred_path).raise_first()  # types, ranges, indices: rlipv2.schemas
        parts = []
        for i, rec in enumerate(data):
            name = rec.get("file_name") if isinstance(rec, dict) else None
            where = f"{pred_path} record {i} ({name})"
            if name is None:
                raise ValueError(f"{pred_path} record {i}: no 'file_name'")
            idx = image_index(name, where)
            try:
                boxes = np.array([p["bbox"] for p in rec.get("predictions", [])], np.float32).reshape(-1, 4)
                labels = [p["category_id"] for p in rec.get("predictions", [])]
                hois = rec.get("hoi_prediction", [])
                s = np.array([h["subject_id"] for h in hois], np.int64)
                o = np.array([h["object_id"] for h in hois], np.int64)
                vb = [h["category_id"] for h in hois]
                sc = np.array([h["score"] for h in hois], np.float32)
            except (KeyError, TypeError) as e:
                raise ValueError(f"{where}: malformed record ({e!r})") from None
            if json_ids == "dataset":
                labels = ids.objects(labels, where)
                vb = ids.verbs(vb, where)
            else:
                labels, vb = np.asarray(labels, np.int64), np.asarray(vb, np.int64)
            if len(s) and (min(s.min(), o.min()) < 0 or max(s.max(), o.max()) >= len(boxes)):
                raise ValueError(f"{where}: subject_id/object_id out of range [0, {len(boxes)})")
            parts.append(select_triplet_candidates(idx, boxes[s], boxes[o], labels[s] if len(s) else s,
                                                   labels[o] if len(o) else o, vb, sc, correct_mat, top_k,
                                                   protocol, where=where))
        cand = HOICandidates.concatenate(parts)
    else:
        raise ValueError(f"{pred_path}: predictions must be a .npz (raw per-query) or .json (triplets) file")
    missing = gt.num_images - len(seen)
    if missing:
        msg = f"{missing} of {gt.num_images} ground-truth images have no prediction record (scored as no detection)"
        if not allow_missing:
            raise ValueError(msg)
        logger.warning(msg)
    return cand


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rlipv2.evaluation.hico", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt", required=True, help="test_hico.json (community format)")
    p.add_argument("--pred", required=True, help="raw per-query .npz or triplet .json")
    p.add_argument("--rare-from", default=None, help="trainval_hico.json: rare = fewer than 10 training instances")
    p.add_argument("--correct-mat", required=True, help="corre_hico.npy, (num_verbs, num_objects) 0/1")
    p.add_argument("--protocol", choices=PROTOCOLS, default="qpic")
    p.add_argument("--top-k", type=nonnegative_int, default=100, help="triplets kept per image (0: no cap)")
    p.add_argument("--nms", action="store_true", help="pairwise triplet NMS after the top-k cut")
    p.add_argument("--nms-thresh", type=unit_interval, default=0.7)
    p.add_argument("--nms-alpha", type=nonnegative_float, default=1.0)
    p.add_argument("--nms-beta", type=nonnegative_float, default=0.5)
    p.add_argument("--known-object", action="store_true", help="Known-Object mode (objects from the GT hois)")
    p.add_argument("--zero-shot", default=None, help="UC-RF | UC-NF | UO | UV | JSON file: report unseen/seen/full")
    p.add_argument("--json-out", default=None, help="where to write the results JSON")
    p.add_argument("--output-dir", default=None, help="also write the per-class CSV and PNG here")
    p.add_argument("--object-ids", default="auto", help="auto | coco80 | identity | JSON list of dataset ids | "
                   "object_names.json ({name: id} in label order)")
    p.add_argument("--verb-offset", default="auto", choices=("auto", "0", "1"),
                   help="dataset verb id - offset = column")
    p.add_argument("--json-ids", choices=("dataset", "contiguous"), default="dataset",
                   help="ids used in a triplet-JSON PRED (dataset ids like the GT, or 0-based labels)")
    p.add_argument("--pred-box-offset", type=finite_float, default=None,
                   help="added to predicted boxes (default: 0 for qpic, 1 for matlab)")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    c0 = time.process_time()
    cm = load_correct_mat(args.correct_mat)
    ids = IdMaps.from_spec(cm, args.object_ids, args.verb_offset)
    box_dtype = np.float32 if args.protocol == "qpic" else np.float64
    gt = gt_from_json(args.gt, ids, box_dtype=box_dtype)
    cand = load_predictions(args.pred, gt, ids, cm, args.top_k, args.protocol, args.json_ids)
    counts = train_counts_from_json(args.rare_from, ids) if args.rare_from else None
    zero_shot = hico_zero_shot_pairs(args.zero_shot) if args.zero_shot else None
    result = score_hico(gt, cand, cm, protocol=args.protocol, train_counts=counts, zero_shot=zero_shot,
                        nms=args.nms, nms_thresh=args.nms_thresh, nms_alpha=args.nms_alpha,
                        nms_beta=args.nms_beta, known_object=args.known_object,
                        pred_box_offset=args.pred_box_offset)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    setting = "known_object" if args.known_object else "default"
    out = OrderedDict(
        protocol=args.protocol, setting=setting, zero_shot=args.zero_shot, top_k=args.top_k,
        nms=dict(enabled=args.nms, thresh=args.nms_thresh, alpha=args.nms_alpha, beta=args.nms_beta),
        num_images=gt.num_images, num_candidates=len(cand), seconds=round(elapsed, 3), cpu_seconds=round(cpu, 3),
        hoi=result.summary)
    s = result.summary
    split = ("unseen", "seen") if zero_shot else ("rare", "non_rare")
    print(f"HICO-DET [{args.protocol} protocol, {setting}{', zero-shot ' + args.zero_shot if zero_shot else ''}] "
          f"mAP full {100 * s['mAP']:.2f}  {split[0]} {100 * s['mAP_' + split[0]]:.2f}  "
          f"{split[1]} {100 * s['mAP_' + split[1]]:.2f}  mean max recall {100 * s['mean_max_recall']:.2f}  "
          f"({int(s['num_classes'])} classes, {elapsed:.2f} s)")
    if args.json_out:
        write_json_atomic(args.json_out, out)
    if args.output_dir:
        write_reports(args.output_dir, result, train_counts=counts, split_names=split)
    return out


def write_hico_npz(path, records, num_verbs: int, contig_to_dataset_id: np.ndarray) -> None:
    """Write compact per-image triplets as the raw per-query .npz of the CLI.

    Each distinct (query) of an image becomes one row: boxes (2Q', 4) = subjects then objects,
    labels (2Q',) dataset ids, verb_scores (Q', V) holding the kept scores (0 elsewhere).
    """
    names = [os.path.basename(r["file_name"]) for r in records]
    if len(set(names)) != len(names):
        names = [r["file_name"] for r in records]

    def arrays():
        yield "file_names", np.array(names)
        for i, r in enumerate(records):
            q = r["query"]
            uq, inv = np.unique(q, return_inverse=True)
            first = np.zeros(len(uq), np.int64)
            first[inv[::-1]] = np.arange(len(q))[::-1]
            nq = len(uq)
            vs = np.zeros((nq, num_verbs), r["scores"].dtype)
            vs[inv, r["verbs"]] = r["scores"]
            yield f"boxes_{i}", np.concatenate([r["sub_boxes"][first], r["obj_boxes"][first]]).reshape(-1, 4)
            yield f"labels_{i}", contig_to_dataset_id[np.concatenate([r["sub_labels"][first],
                                                                       r["obj_labels"][first]])].astype(np.int64)
            yield f"verb_scores_{i}", vs
            yield f"sub_ids_{i}", np.arange(nq, dtype=np.int64)
            yield f"obj_ids_{i}", np.arange(nq, 2 * nq, dtype=np.int64)

    write_npz_atomic(path, arrays())


def __getattr__(name):
    # The Detectron2 evaluator lives in hico_evaluator.py so that the CLI never imports torch / detectron2.
    if name == "HICOEvaluator":
        from .hico_evaluator import HICOEvaluator

        return HICOEvaluator
    raise AttributeError(name)


if __name__ == "__main__":
    from rlipv2.utils.cli import run_cli

    if run_cli(main, "python -m rlipv2.evaluation.hico"):  # exit only on error (runpy callers go on)
        sys.exit(2)
