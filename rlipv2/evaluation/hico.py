"""HICO-DET evaluation CLI (scoring in ``hico_core``; the Detectron2 ``HICOEvaluator`` is in ``hico_evaluator``).

Two protocols (see ``hico_core``): ``qpic`` (the official RLIPv2 / QPIC Python evaluator, with its
quirks) and ``matlab`` (ywchao/ho-rcnn ``VOCevaldet_bboxpair``, Default or Known-Object). Both report
mAP Full / Rare / Non-Rare (Unseen / Seen for zero-shot settings) and the mean max recall.

    python -m rlipv2.evaluation.hico --pred PRED.npz|PRED.json [--gt test_hico.json] \
        [--rare-from trainval_hico.json] [--correct-mat corre_hico.npy] [--protocol qpic|matlab] [--top-k K] \
        [--nms | --no-nms] [--nms-thresh 0.7 --nms-alpha 1.0 --nms-beta 0.5] [--known-object] \
        [--zero-shot UC-RF] [--json-out OUT.json] [--output-dir DIR]

A ``hico_predictions.npz`` written during training carries what its protocol needs (vocabulary texts
and ids, correct-mat, rare split, protocol, top-k, NMS, Known-Object, zero-shot split, GT file): re-scored
with no other flag it gives the training-time numbers. A flag overrides the file. ``--top-k`` defaults
to the protocol's rule: 100 for ``qpic``, no cap for ``matlab``.

Printed numbers are percent; the JSON holds fractions (0-1).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import OrderedDict

import numpy as np

from ..utils.cli import (
    finite_float,
    input_from,
    json_list_or_file,
    keyword_or,
    nonnegative_float,
    nonnegative_int,
    unit_interval,
)
from .hico_core import (  # noqa: F401  (re-exported: the scoring API of this module's users)
    PROTOCOLS,
    HOIResult,
    score_hico,
    write_reports,
)
from .hico_io import (  # noqa: F401  (re-exported)
    IdMaps,
    gt_from_json,
    hico_names,
    hico_zero_shot_pairs,
    load_correct_mat,
    load_predictions,
    read_prediction_meta,
    train_counts_from_json,
    write_hico_npz,
    write_json_atomic,
)

logger = logging.getLogger(__name__)

__all__ = ["score_hico", "main", "write_hico_npz", "load_predictions", "default_top_k"]

#: per-image cap of each protocol when --top-k is not given: the Python ports keep the top 100, MATLAB
#: ``VOCevaldet_bboxpair`` scores every detection it is given (docs/evaluation_protocols.md, section 1.2)
PROTOCOL_TOP_K = {"qpic": 100, "matlab": 0}

GT_FORMAT = "test_hico.json: a list of {file_name, annotations: [{bbox, category_id}], hoi_annotation: " \
            "[{subject_id, object_id, category_id}]}"


def default_top_k(protocol: str) -> int:
    return PROTOCOL_TOP_K[protocol]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rlipv2.evaluation.hico", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", required=True, help="raw per-query .npz (e.g. hico_predictions.npz) or triplet .json")
    p.add_argument("--gt", default=None, help="test_hico.json (community format); default: the predictions "
                   "file's meta_gt_file")
    p.add_argument("--rare-from", default=None, help="trainval_hico.json: rare = fewer than 10 training instances "
                   "(default: the predictions file's split)")
    p.add_argument("--correct-mat", default=None, help="corre_hico.npy, (num_verbs, num_objects) 0/1 (default: the "
                   "predictions file's)")
    p.add_argument("--protocol", choices=PROTOCOLS, default=None, help="default: the predictions file's, else qpic")
    p.add_argument("--top-k", type=nonnegative_int, default=None,
                   help="triplets kept per image, 0: no cap (default: the protocol's rule, 100 for qpic, no cap "
                   "for matlab; or the predictions file's)")
    p.add_argument("--nms", action=argparse.BooleanOptionalAction, default=None,
                   help="pairwise triplet NMS after the top-k cut (default: the predictions file's, else off)")
    p.add_argument("--nms-thresh", type=unit_interval, default=None, help="default 0.7")
    p.add_argument("--nms-alpha", type=nonnegative_float, default=None, help="default 1.0")
    p.add_argument("--nms-beta", type=nonnegative_float, default=None, help="default 0.5")
    p.add_argument("--known-object", action=argparse.BooleanOptionalAction, default=None,
                   help="Known-Object mode (objects from the GT hois)")
    p.add_argument("--zero-shot", default=None, help="UC-RF | UC-NF | UO | UV | JSON file: report unseen/seen/full")
    p.add_argument("--json-out", default=None, help="where to write the results JSON (fractions)")
    p.add_argument("--output-dir", default=None, help="also write the per-class CSV and PNG here")
    p.add_argument("--object-ids", type=keyword_or(("auto", "coco80", "identity"), json_list_or_file), default=None,
                   help="auto | coco80 | identity | inline JSON list of dataset ids in label order (e.g. "
                   "'[1, 2, 3]') | a file with that list or {name: id} in label order (default: the predictions "
                   "file's ids, else auto)")
    p.add_argument("--verb-offset", default=None, choices=("auto", "0", "1"),
                   help="dataset verb id - offset = column (default: the predictions file's ids, else auto)")
    p.add_argument("--json-ids", choices=("dataset", "contiguous"), default="dataset",
                   help="ids used in a triplet-JSON PRED (dataset ids like the GT, or 0-based labels)")
    p.add_argument("--pred-box-offset", type=finite_float, default=None,
                   help="added to predicted boxes (default: 0 for qpic, 1 for matlab)")
    return p


def resolve_settings(args, meta: dict) -> dict:
    """Every protocol setting with its source: the flag, the predictions file, or the default."""
    s, src = {}, {}

    def pick(name, flag_value, meta_key=None, default=None, convert=lambda v: v):
        if flag_value is not None:
            s[name], src[name] = flag_value, "flag"
        elif meta_key is not None and meta_key in meta:
            s[name], src[name] = convert(meta[meta_key]), "predictions file"
        else:
            s[name], src[name] = default, "default"

    pick("protocol", args.protocol, "protocol", "qpic")
    # top-k follows the protocol: the file's value only when the protocol is the file's too
    if args.top_k is not None:
        s["top_k"], src["top_k"] = args.top_k, "flag"
    elif meta.get("protocol") == s["protocol"] and "top_k" in meta:
        s["top_k"], src["top_k"] = int(meta["top_k"]), "predictions file"
    else:
        s["top_k"], src["top_k"] = default_top_k(s["protocol"]), f"{s['protocol']} protocol rule"
    nms = meta.get("nms")
    pick("nms", args.nms, "nms" if nms is not None else None, False, lambda v: bool(v[0]))
    for k, i, d in (("nms_thresh", 1, 0.7), ("nms_alpha", 2, 1.0), ("nms_beta", 3, 0.5)):
        pick(k, getattr(args, k), "nms" if nms is not None else None, d, lambda v, i=i: float(v[i]))
    pick("known_object", args.known_object, "known_object", False, bool)
    s["sources"] = src
    return s


def _processed_images(gt, pred_path):
    """The ground truth of the images a training-time predictions file holds (HICOEvaluator scores the
    images it processed, e.g. a subset of the test set), in the GT file's order."""
    from .hico_io import NpzReader

    z = NpzReader(pred_path)
    try:
        names = [str(n) for n in z["file_names"].tolist()] if "file_names" in z else []
    finally:
        z.close()
    index = {n: i for i, n in enumerate(gt.file_names)}
    keep = sorted({index[n] for n in names if n in index})
    if len(keep) == gt.num_images:
        return gt
    logger.info("scoring the %d of %d ground-truth images that the predictions file holds", len(keep),
                gt.num_images)
    return gt.subset(keep)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    c0 = time.process_time()
    with input_from("--pred", "a raw per-query .npz or a triplet .json (docs/evaluation.md)"):
        meta = read_prediction_meta(args.pred)
    st = resolve_settings(args, meta)
    src = st["sources"]
    protocol = st["protocol"]
    # correct-mat
    if args.correct_mat is not None:
        with input_from("--correct-mat", "a .npy (num_verbs, num_objects) 0/1 matrix"):
            cm = load_correct_mat(args.correct_mat)
        src["correct_mat"] = f"--correct-mat {args.correct_mat}"
    elif "correct_mat" in meta:
        cm, src["correct_mat"] = np.asarray(meta["correct_mat"]), "predictions file"
    else:
        raise ValueError("--correct-mat: required (a .npy (num_verbs, num_objects) 0/1 matrix such as "
                         "corre_hico.npy): the predictions file does not carry one")
    # ids
    with input_from("--object-ids", "auto | coco80 | identity | a JSON list of dataset ids | a file with it"):
        if args.object_ids is not None or args.verb_offset is not None or "object_ids" not in meta:
            ids = IdMaps.from_spec(cm, args.object_ids or "auto", args.verb_offset or "auto")
            src["ids"] = "flags" if args.object_ids is not None or args.verb_offset is not None else "auto"
        else:
            ids = IdMaps(np.asarray(meta["object_ids"]).tolist(), 0, cm.shape[0],
                         verb_ids=np.asarray(meta["verb_ids"]).tolist() if "verb_ids" in meta else None)
            src["ids"] = "predictions file"
    # names of the classes (CSV / plots)
    if "object_names" in meta and "verb_names" in meta:
        object_names, verb_names = list(meta["object_names"]), list(meta["verb_names"])
    elif cm.shape == (117, 80) and src["ids"] in ("auto", "flags") and args.object_ids in (None, "auto", "coco80"):
        object_names, verb_names = hico_names()
    else:
        object_names = verb_names = None
    # ground truth
    gt_path = args.gt
    if gt_path is None:
        gt_path = meta.get("gt_file")
        if gt_path is None or not os.path.isfile(gt_path):
            raise ValueError(f"--gt: required ({GT_FORMAT})" + (
                f"; the predictions file names {gt_path!r}, which does not exist here" if gt_path else ""))
        src["gt"] = "predictions file"
    box_dtype = np.float32 if protocol == "qpic" else np.float64
    with input_from("--gt", GT_FORMAT):
        gt = gt_from_json(gt_path, ids, box_dtype=box_dtype)
    if "format_version" in meta:  # a training-time file: scored on the images the run processed, as there
        gt, src["gt_images"] = _processed_images(gt, args.pred), "the images of the predictions file"
    with input_from("--pred", "a raw per-query .npz or a triplet .json with the GT's ids (docs/evaluation.md)"):
        cand = load_predictions(args.pred, gt, ids, cm, st["top_k"], protocol, args.json_ids)
    # rare / zero-shot split
    counts = rare_pairs = nonrare_pairs = None
    if args.rare_from:
        with input_from("--rare-from", "trainval_hico.json in the community HICO-DET format"):
            counts = train_counts_from_json(args.rare_from, ids)
        src["rare_split"] = f"--rare-from {args.rare_from}"
    elif "rare_pairs" in meta:
        rare_pairs, nonrare_pairs = meta["rare_pairs"], meta.get("nonrare_pairs")
        src["rare_split"] = f"predictions file ({meta.get('rare_source', 'training metadata')})"
    else:
        src["rare_split"] = "none"
    zero_shot, zs_name = None, None
    if args.zero_shot:
        with input_from("--zero-shot", "UC-RF | UC-NF | UO | UV | a JSON file {\"unseen\": [[verb, object], ...]}"):
            zero_shot = hico_zero_shot_pairs(args.zero_shot)
        zs_name = args.zero_shot
    elif "zero_shot_unseen" in meta and args.rare_from is None:
        zero_shot, zs_name = (meta["zero_shot_unseen"], None), "predictions file"
    result = score_hico(gt, cand, cm, protocol=protocol, train_counts=counts, rare_pairs=rare_pairs,
                        nonrare_pairs=nonrare_pairs, zero_shot=zero_shot, nms=st["nms"], nms_thresh=st["nms_thresh"],
                        nms_alpha=st["nms_alpha"], nms_beta=st["nms_beta"], known_object=st["known_object"],
                        pred_box_offset=args.pred_box_offset, keep_curves=bool(args.output_dir))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    setting = "known_object" if st["known_object"] else "default"
    out = OrderedDict(
        protocol=protocol, setting=setting, zero_shot=zs_name, top_k=st["top_k"],
        nms=dict(enabled=st["nms"], thresh=st["nms_thresh"], alpha=st["nms_alpha"], beta=st["nms_beta"]),
        num_images=gt.num_images, num_candidates=len(cand), seconds=round(elapsed, 3), cpu_seconds=round(cpu, 3),
        unit="fraction (0-1); the printed numbers are percent", sources=src, hoi=result.summary)
    s = result.summary
    split = ("unseen", "seen") if zero_shot else ("rare", "non_rare")
    print(f"HICO-DET [{protocol} protocol, {setting}{', zero-shot ' + zs_name if zero_shot else ''}, top-k "
          f"{st['top_k'] or 'no cap'}{', NMS' if st['nms'] else ''}] mAP full {100 * s['mAP']:.2f}%  {split[0]} "
          f"{100 * s['mAP_' + split[0]]:.2f}%  {split[1]} {100 * s['mAP_' + split[1]]:.2f}%  mean max recall "
          f"{100 * s['mean_max_recall']:.2f}%  ({int(s['num_classes'])} classes, {elapsed:.2f} s)")
    if args.json_out:
        write_json_atomic(args.json_out, out)
    if args.output_dir:
        write_reports(args.output_dir, result, object_names, verb_names, train_counts=counts, split_names=split)
    return out


if __name__ == "__main__":
    from rlipv2.utils.cli import run_cli

    if run_cli(main, "python -m rlipv2.evaluation.hico"):  # exit only on error (runpy callers go on)
        sys.exit(2)
