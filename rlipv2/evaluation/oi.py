"""Open Images v6 scene-graph evaluation CLI: two protocols (scoring in ``oi_core``; the Detectron2
``OISGGEvaluator`` is in ``sgg_evaluator``).

    python -m rlipv2.evaluation.oi --gt OI_SGG_test.json --pred PRED.npz --protocol rlipv2|gcl --json-out OUT.json

``rlipv2`` reproduces the official RLIPv2 ``datasets/oi_sgg_eval.py`` (run with topK = 100 and 50, as
its engine does): QPIC-style triplet classes (subject, object, predicate) from the test GT, top-K of
Q x 30 per image, pairwise triplet NMS (0.7 / 1.0 / 0.5) and phrase NMS on union boxes (0.5) when
``nms`` is on (all RLIPv2 OI scripts pass ``--use_nms_filter``), 11-point AP with ``np.arange``
thresholds, wmAP weighted by triplet GT frequency, R@50 = micro recall of the top-50 run, and
``score_wtd = 0.2 R@50 + 0.4 wmAP_rel + 0.4 wmAP_phr``. Its quirks are kept under this name:
phrase matching reads the overlaps of the phrase at the same *list* position before the score sort
(which differs after NMS), phrase predictions on images without GT boxes are false positives while
relation predictions there are skipped, and the phrase micro recall leaves out the GT of triplets
without any phrase prediction. Where the original crashes (an image with GT boxes but no relation)
its phrases count as false positives.

``gcl`` reproduces the protocol of GCL / BGNN / PySGG / SGTR (``ap_eval_rel.py``): each pair keeps its
top-2 predicates, triplet score = relation score (already subject x object x predicate), top-100 per
image, scores <= 1e-5 dropped; per *predicate* class, detections pooled over images and matched
greedily (VOC style, no fallback) to GT of that predicate with equal subject and object labels when
the overlap (min of the two IoUs for relations, union-box IoU for phrases) is strictly > 0.5;
all-point AP; wmAP weighted by predicate frequency; R@50 = micro recall where several predictions may
hit one GT (IoUs >= 0.5).

The .npz mirrors HICO's: ``file_names`` and per image ``boxes_{i}`` (2Q, 4) subjects then objects,
``labels_{i}`` (2Q,) object ids, ``rel_scores_{i}`` (Q, R), ``sub_ids_{i}``, ``obj_ids_{i}`` (Q,).
The GT JSON is RLIPv2's ``OI_SGG_test.json``: a list of {"file_name", "annotations": [{"bbox",
"category_id"}], "rel_annotations": [{"subject_id", "object_id", "category_id"}]}.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict

from ..schemas.oi import OI_SCHEMA, check_id_list
from ..utils.cli import input_from, json_list_or_file, keyword_or, positive_int
from .hico_io import IdMaps, load_json, write_json_atomic
from .oi_core import (  # noqa: F401  (re-exported: the scoring API of this module's users)
    evaluate_oi,
    evaluate_oi_gcl,
    evaluate_oi_rlipv2,
    load_oi_gt,
    load_oi_predictions,
    select_oi_candidates,
    write_oi_reports,
)

__all__ = ["load_oi_gt", "load_oi_predictions", "evaluate_oi", "evaluate_oi_rlipv2", "evaluate_oi_gcl",
           "write_oi_reports", "main"]


GT_FORMAT = "OI_SGG_test.json: a list of {file_name, annotations: [{bbox, category_id}], rel_annotations: " \
            "[{subject_id, object_id, category_id}]}"
PRED_FORMAT = "a .npz with file_names and per image boxes_{i}, labels_{i}, rel_scores_{i}, sub_ids_{i}, obj_ids_{i}"


def build_parser():
    p = argparse.ArgumentParser(prog="python -m rlipv2.evaluation.oi", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt", required=True, help="OI_SGG_test.json")
    p.add_argument("--pred", required=True, help="raw per-query .npz (rel_scores_{i})")
    p.add_argument("--protocol", choices=("rlipv2", "gcl"), default="rlipv2")
    p.add_argument("--num-rels", type=positive_int, default=30)
    p.add_argument("--object-ids", type=keyword_or(("identity",), json_list_or_file), default="identity",
                   help="identity (contiguous ids up to the GT's largest) | inline JSON list of dataset ids in label "
                   "order (e.g. '[0, 1, 2]') | a file with that list")
    p.add_argument("--no-nms", action="store_true", help="rlipv2 protocol without the NMS filters")
    p.add_argument("--json-out", default=None, help="results JSON (fractions)")
    p.add_argument("--output-dir", default=None, help="also write the per-class CSV and PNG here")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    with input_from("--gt", GT_FORMAT):
        data = load_json(args.gt)
        if args.object_ids == "identity":
            # ids are bounded by the schema (MAX_CLASS_ID) before they size anything
            OI_SCHEMA.validate(data, args.gt, {"allow_outside_root": True,
                                               "predicate_ids": range(args.num_rels)}).raise_first()
            max_id = max((a["category_id"] for r in data for a in r.get("annotations", [])), default=0)
            object_ids = list(range(max_id + 1))
    if args.object_ids != "identity":
        with input_from("--object-ids", "identity | a JSON list of dataset ids | a file with that list"):
            listed = args.object_ids if isinstance(args.object_ids, list) else load_json(args.object_ids)
            object_ids = check_id_list(listed, "--object-ids" if isinstance(args.object_ids, list) else args.object_ids)
    ids = IdMaps(object_ids, 0, args.num_rels)
    with input_from("--gt", GT_FORMAT):
        gt = load_oi_gt(args.gt, ids, data=data)
    with input_from("--pred", PRED_FORMAT):
        raw = load_oi_predictions(args.pred, gt, ids, args.num_rels)
    res = evaluate_oi(gt, raw, len(object_ids), args.num_rels, args.protocol, nms=not args.no_nms)
    elapsed = time.perf_counter() - t0
    out = OrderedDict(protocol=args.protocol, num_images=gt.num_images, seconds=round(elapsed, 3),
                      unit="fraction (0-1); the printed numbers are percent", oi=res["oi"])
    if args.output_dir:
        write_oi_reports(args.output_dir, res["per_class"], args.protocol)
    o = res["oi"]
    print(f"Open Images [{args.protocol} protocol] R@50 {100 * o['R@50']:.2f}%  wmAP_rel {100 * o['wmAP_rel']:.2f}%  "
          f"wmAP_phr {100 * o['wmAP_phr']:.2f}%  score_wtd {100 * o['score_wtd']:.2f}%  ({elapsed:.2f} s)")
    if args.json_out:
        write_json_atomic(args.json_out, out)
    return out


if __name__ == "__main__":
    from rlipv2.utils.cli import run_cli

    if run_cli(main, "python -m rlipv2.evaluation.oi"):  # exit only on error (runpy callers go on)
        sys.exit(2)
