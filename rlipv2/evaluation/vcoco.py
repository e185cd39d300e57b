"""V-COCO evaluation CLI (s-gupta/v-coco ``vsrl_eval.py`` protocol; scoring in ``vcoco_core``).

    python -m rlipv2.evaluation.vcoco --vcoco-test vcoco_test.json --coco instances_vcoco_all_2014.json \
        --ids vcoco_test.ids --det DETS.json|DETS.pkl|DETS.npz [--allow-pickle] --json-out OUT.json

Human output in percent; the JSON holds fractions (0-1), as every evaluator output (docs/evaluation.md).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import OrderedDict

from ..utils.cli import input_from, unit_interval
from .hico_io import write_json_atomic
from .vcoco_core import (  # noqa: F401  (re-exported: the scoring API of this module's users)
    VCOCODetections,
    VCOCOGroundTruth,
    detections_from_dicts,
    evaluate_vcoco,
    load_detections,
    load_vcoco_gt,
    write_vcoco_reports,
)

logger = logging.getLogger(__name__)

__all__ = ["VCOCOGroundTruth", "VCOCODetections", "load_vcoco_gt", "load_detections", "detections_from_dicts",
           "evaluate_vcoco", "write_vcoco_reports", "main"]


def build_parser():
    p = argparse.ArgumentParser(prog="python -m rlipv2.evaluation.vcoco", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vcoco-test", required=True, help="vcoco_test.json (s-gupta/v-coco data/vcoco)")
    p.add_argument("--coco", required=True, help="instances_vcoco_all_2014.json")
    p.add_argument("--ids", required=True, help="vcoco_test.ids")
    p.add_argument("--det", required=True, help="detections: .json or .pkl (vsrl_eval format) or .npz (arrays)")
    p.add_argument("--allow-pickle", action="store_true", help="allow reading a .pkl (unpickling can run code)")
    p.add_argument("--ovr-thresh", type=unit_interval, default=0.5)
    p.add_argument("--json-out", default=None)
    p.add_argument("--output-dir", default=None, help="also write the per-class CSV and PNG here")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    c0 = time.process_time()
    with input_from("--vcoco-test / --coco / --ids", "vcoco_test.json (s-gupta/v-coco), instances_vcoco_all_2014.json "
                    "(COCO instances), vcoco_test.ids (one image id per line)"):
        gt = load_vcoco_gt(args.vcoco_test, args.coco, args.ids)
    with input_from("--det", "vsrl_eval detections (.json list of dicts, .pkl with --allow-pickle) or the .npz arrays "
                    "image_ids, person_boxes, agent_scores, role_boxes"):
        det = load_detections(args.det, gt, args.allow_pickle)
    res = evaluate_vcoco(gt, det, args.ovr_thresh)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    out = OrderedDict(protocol="vsrl_eval", num_images=len(gt.image_ids), num_detections=len(det.image_ids),
                      seconds=round(elapsed, 3), cpu_seconds=round(cpu, 3),
                      unit="fraction (0-1); the printed numbers are percent", **res)
    s = res["vcoco"]
    print(f"V-COCO [vsrl_eval protocol] agent mAP {100 * s['agent_mAP']:.2f}%  role mAP S1 "
          f"{100 * s['role_mAP_s1']:.2f}% (25 pairs) / {100 * s['role_mAP_s1_24']:.2f}% (24)  S2 "
          f"{100 * s['role_mAP_s2']:.2f}% (25) / "
          f"{100 * s['role_mAP_s2_24']:.2f}% (24)  ({elapsed:.2f} s)")
    for n in res["notes"]:
        print("note:", n)
    if args.json_out:
        write_json_atomic(args.json_out, out)
    if args.output_dir:
        write_vcoco_reports(args.output_dir, res)
    return out


if __name__ == "__main__":
    from rlipv2.utils.cli import run_cli

    if run_cli(main, "python -m rlipv2.evaluation.vcoco"):  # exit only on error (runpy callers go on)
        sys.exit(2)
