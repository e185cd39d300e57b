#!/usr/bin/env python
"""Benchmark of the evaluators on synthetic full-size test sets, with an exactness cross-check.

HICO-DET: generates 9,546 images (1-4 GT pairs each, the 600 classes of corre_hico.npy, COCO ids) and a
raw per-query .npz with Q = 100 queries x 117 verbs, then
  1. times ``python -m rlipv2.evaluation.hico`` on it, pinned to one core (wall time of the process,
     the evaluation time it reports itself, peak RSS), for the qpic and matlab protocols;
  2. runs the slow loop-for-loop reference (tests/evaluation/reference_hico.py, a straightforward
     re-implementation of the official algorithms) on a subset and shows identical numbers and the
     speed ratio.
V-COCO: 4,946 images x 100 detections through ``python -m rlipv2.evaluation.vcoco`` (when present).

Usage: python tools/benchmark_eval.py [--images 9546] [--queries 100] [--subset 200] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlipv2.evaluation.hico_io import METADATA_DIR, hico_coco80_ids, write_npz_atomic  # noqa: E402


def _load_reference():
    spec = importlib.util.spec_from_file_location("reference_hico", ROOT / "tests" / "evaluation" / "reference_hico.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_hico(n_images: int, num_queries: int, seed: int = 0):
    """Synthetic HICO-DET-like GT / training JSON records and raw per-query predictions (generator)."""
    rng = np.random.default_rng(seed)
    cm = np.load(METADATA_DIR / "corre_hico.npy")
    coco = np.asarray(hico_coco80_ids())
    verbs_of_obj = [np.nonzero(cm[:, o])[0] for o in range(cm.shape[1])]
    nv = cm.shape[0]
    gt_records = []

    def rand_box(size):
        xy = rng.uniform(0, 500, 2)
        wh = rng.uniform(20, 200, 2)
        return np.r_[xy, xy + wh][None].repeat(size, 0) if size else np.zeros((0, 4))

    def preds_for(gt_boxes, gt_labels, hois):
        q = num_queries
        boxes = np.empty((2 * q, 4), np.float32)
        labels = np.empty(2 * q, np.int64)
        labels[:q] = 0
        vs = (rng.random((q, nv), dtype=np.float32) ** 4) * 0.6
        for j in range(q):
            if hois and rng.random() < 0.3:
                s, o, v = hois[rng.integers(len(hois))]
                boxes[j] = gt_boxes[s] + rng.normal(0, 12, 4)
                boxes[q + j] = gt_boxes[o] + rng.normal(0, 12, 4)
                labels[q + j] = gt_labels[o] if rng.random() < 0.9 else rng.integers(80)
                vs[j, v] = np.float32(rng.random())
            else:
                boxes[j] = rand_box(1)[0]
                boxes[q + j] = rand_box(1)[0]
                labels[q + j] = rng.integers(80)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
        return boxes, labels, vs

    preds = []
    for i in range(n_images):
        n_pairs = int(rng.integers(1, 5))
        boxes, labels, hois = [], [], []
        for _ in range(n_pairs):
            o = int(rng.integers(80))
            v = int(rng.choice(verbs_of_obj[o]))
            boxes += [rand_box(1)[0], rand_box(1)[0]]
            labels += [0, o]
            hois.append((len(boxes) - 2, len(boxes) - 1, v))
        boxes = np.round(np.asarray(boxes), 1)
        gt_records.append({
            "file_name": f"HICO_test2015_{i:08d}.jpg",
            "annotations": [{"bbox": b.tolist(), "category_id": int(coco[lab])} for b, lab in zip(boxes, labels)],
            "hoi_annotation": [{"subject_id": s, "object_id": o, "category_id": v + 1} for s, o, v in hois]})
        pb, pl, vs = preds_for(boxes, labels, hois)
        preds.append((pb, pl, vs))
    # training set: every valid class with a random count (about a quarter rare)
    train = []
    for v, o in zip(*np.nonzero(cm)):
        c = int(rng.integers(1, 10)) if rng.random() < 0.23 else int(rng.integers(10, 40))
        for _ in range(c):
            train.append((v, o))
    train_records = [{"file_name": "train.jpg",
                      "annotations": [{"bbox": [0, 0, 10, 10], "category_id": 1}] +
                                     [{"bbox": [0, 0, 10, 10], "category_id": int(coco[o])} for _, o in train],
                      "hoi_annotation": [{"subject_id": 0, "object_id": k + 1, "category_id": int(v) + 1}
                                         for k, (v, _) in enumerate(train)]}]
    return cm, coco, gt_records, train_records, preds


def write_hico_files(workdir: Path, cm, coco, gt_records, train_records, preds):
    (workdir / "test_hico.json").write_text(json.dumps(gt_records))
    (workdir / "trainval_hico.json").write_text(json.dumps(train_records))
    np.save(workdir / "corre_hico.npy", cm)
    q = preds[0][2].shape[0]

    def arrays():
        yield "file_names", np.array([r["file_name"] for r in gt_records])
        for i, (pb, pl, vs) in enumerate(preds):
            yield f"boxes_{i}", pb
            yield f"labels_{i}", coco[pl]
            yield f"verb_scores_{i}", vs
            yield f"sub_ids_{i}", np.arange(q)
            yield f"obj_ids_{i}", np.arange(q, 2 * q)

    write_npz_atomic(workdir / "preds.npz", arrays())


def run_cli(module: str, args: list, one_core: bool = True):
    """Run ``python -m module args`` in a fresh process; return (wall s, in-process s, peak RSS MiB, CPU s,
    stdout). Peak RSS is the child's own VmHWM (ru_maxrss would include the parent's at fork time)."""
    code = ("import resource, runpy, sys, time; t = time.perf_counter(); sys.argv = [sys.argv[0]] + sys.argv[1:]; "
            f"runpy.run_module({module!r}, run_name='__main__'); "
            "r = resource.getrusage(resource.RUSAGE_SELF); "
            "hwm = [int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')] or [r.ru_maxrss]; "
            "print('BENCH', time.perf_counter() - t, hwm[0] / 1024, r.ru_utime + r.ru_stime)")
    cmd = [sys.executable, "-c", code, *args]
    if one_core and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if p.returncode:
        raise RuntimeError(f"{module} failed:\n{p.stdout}\n{p.stderr}")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("BENCH")][-1].split()
    return wall, float(line[1]), float(line[2]), float(line[3]), p.stdout


def bench_hico(workdir: Path, n_images: int, num_queries: int, subset: int):
    print(f"== HICO-DET: {n_images} images x {num_queries} queries x 117 verbs")
    t = time.perf_counter()
    data = make_hico(n_images, num_queries)
    if not (workdir / "preds.npz").exists():
        write_hico_files(workdir, *data)
    size = os.path.getsize(workdir / "preds.npz") / 2**20
    print(f"   generated in {time.perf_counter() - t:.1f} s; npz {size:.0f} MiB")
    results = {}
    for protocol in ("qpic", "matlab"):
        out = workdir / f"out_{protocol}.json"
        args = ["--gt", str(workdir / "test_hico.json"), "--pred", str(workdir / "preds.npz"),
                "--rare-from", str(workdir / "trainval_hico.json"), "--correct-mat", str(workdir / "corre_hico.npy"),
                "--protocol", protocol, "--top-k", "100", "--json-out", str(out)]
        wall, inproc, rss, cpu, _ = run_cli("rlipv2.evaluation.hico", args)
        res = json.loads(out.read_text())
        results[protocol] = res
        print(f"   {protocol:6s}: CPU time {cpu:.2f} s (one core, whole process); wall {wall:.2f} s for the process, "
              f"{inproc:.2f} s for module import + evaluation, {res['seconds']:.2f} s load+score as reported "
              f"({res['cpu_seconds']:.2f} s CPU); peak RSS {rss:.0f} MiB; mAP {100 * res['hoi']['mAP']:.4f} "
              f"rare {100 * res['hoi']['mAP_rare']:.4f} "
              f"non-rare {100 * res['hoi']['mAP_non_rare']:.4f}")
    # exactness + speed ratio against the slow reference on a subset
    ref = _load_reference()
    from rlipv2.evaluation.hico import score_hico
    from rlipv2.evaluation.hico_core import CandidateSelector, HOIGroundTruth
    from rlipv2.evaluation.hico_io import IdMaps, gt_images_from_json, train_counts_from_json

    cm, coco, gt_records, train_records, preds = data
    ids = IdMaps.from_spec(cm)
    gts = gt_images_from_json(workdir / "test_hico.json", ids)[:subset]
    counts = train_counts_from_json(workdir / "trainval_hico.json", ids)
    plist = [{"boxes": pb, "labels": pl, "verb_scores": vs, "sub_ids": np.arange(num_queries),
              "obj_ids": np.arange(num_queries, 2 * num_queries)} for pb, pl, vs in preds[:subset]]
    rare = [t for t, c in counts.items() if c < 10]
    non = [t for t, c in counts.items() if c >= 10]
    pair_counts = Counter()
    for (_, o, v), c in counts.items():
        pair_counts[(v, o)] += c
    rare_pairs = [(int(v), int(o)) for v, o in zip(*np.nonzero(cm)) if pair_counts[(int(v), int(o))] < 10]
    for protocol in ("qpic", "matlab"):
        t = time.perf_counter()
        gt = HOIGroundTruth.from_images(gts, box_dtype=np.float32 if protocol == "qpic" else np.float64)
        sel = CandidateSelector(cm, 100, protocol)
        for i, p in enumerate(plist):
            sel.add(i, p["boxes"], p["labels"], p["verb_scores"], p["sub_ids"], p["obj_ids"])
        fast = score_hico(gt, sel.finish(), cm, protocol=protocol, train_counts=counts).summary
        t_fast = time.perf_counter() - t
        t = time.perf_counter()
        if protocol == "qpic":
            slow, _ = ref.reference_qpic(plist, gts, cm, rare, non, top_k=100)
        else:
            slow, _ = ref.reference_matlab(plist, gts, cm, rare_pairs, top_k=100)
        t_slow = time.perf_counter() - t
        same = all(fast[k] == slow[k] or (np.isnan(fast[k]) and np.isnan(slow[k]))
                   for k in ("mAP", "mAP_rare", "mAP_non_rare", "mean_max_recall"))
        print(f"   reference {protocol:6s} on {subset} images: identical={same} (mAP fast {fast['mAP']!r} slow "
              f"{slow['mAP']!r}); slow {t_slow:.2f} s vs fast {t_fast:.3f} s = {t_slow / t_fast:.0f}x, slow "
              f"extrapolated to {n_images} images: {t_slow / subset * n_images:.0f} s")
        if not same:
            print("   MISMATCH", fast, slow)
    return results


def bench_vcoco(workdir: Path, n_images: int, n_dets: int, subset: int, pickle_images: int):
    import pickle

    spec = importlib.util.spec_from_file_location("reference_vcoco", ROOT / "tests" / "evaluation" /
                                                  "reference_vcoco.py")
    rv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rv)
    meta = json.loads((METADATA_DIR / "vcoco_actions.json").read_text())["actions"]
    print(f"== V-COCO: {n_images} images x {n_dets} detections")
    t = time.perf_counter()
    vc, coco, ids, arrays = rv.make_synthetic_vcoco(n_images, n_dets, seed=0, as_numpy="arrays")
    paths = {"vcoco": workdir / "vcoco_test.json", "coco": workdir / "instances_vcoco_all_2014.json",
             "ids": workdir / "vcoco_test.ids", "npz": workdir / "dets.npz", "pkl": workdir / "dets.pkl"}
    paths["vcoco"].write_text(json.dumps(vc))
    paths["coco"].write_text(json.dumps(coco))
    np.savetxt(paths["ids"], ids, fmt="%d")
    write_npz_atomic(paths["npz"], arrays.items())
    print(f"   generated in {time.perf_counter() - t:.1f} s")
    base = ["--vcoco-test", str(paths["vcoco"]), "--coco", str(paths["coco"]), "--ids", str(paths["ids"])]
    wall, inproc, rss, cpu, _ = run_cli("rlipv2.evaluation.vcoco", base + ["--det", str(paths["npz"]), "--json-out",
                                                                           str(workdir / "vcoco.json")])
    res = json.loads((workdir / "vcoco.json").read_text())
    v = res["vcoco"]
    print(f"   npz detections: CPU time {cpu:.2f} s (one core, whole process); wall {wall:.2f} s for the process, "
          f"{inproc:.2f} s for module import + evaluation, {res['seconds']:.2f} s load+score as reported "
          f"({res['cpu_seconds']:.2f} s CPU); peak RSS {rss:.0f} MiB; agent {100 * v['agent_mAP']:.3f} "
          f"role S1 {100 * v['role_mAP_s1']:.3f} / "
          f"{100 * v['role_mAP_s1_24']:.3f} S2 {100 * v['role_mAP_s2']:.3f} / {100 * v['role_mAP_s2_24']:.3f} "
          "(25 / 24 pairs)")
    # the vsrl_eval pickle format (list of dicts) on the first images: loading dominates
    pk_ids = ids[:pickle_images]
    dets = rv.arrays_to_dicts(arrays, meta, images=pk_ids)
    with open(paths["pkl"], "wb") as f:
        pickle.dump(dets, f, protocol=pickle.HIGHEST_PROTOCOL)
    sub = _vcoco_subset(workdir, vc, pk_ids, "pk")
    wall, inproc, rss, cpu, _ = run_cli("rlipv2.evaluation.vcoco", [
        "--vcoco-test", str(sub), "--coco", str(paths["coco"]), "--ids", str(workdir / "pk.ids"), "--det",
        str(paths["pkl"]), "--allow-pickle", "--json-out", str(workdir / "vcoco_pk.json")])
    res_pk = json.loads((workdir / "vcoco_pk.json").read_text())
    print(f"   pickle of dicts ({len(dets)} detections, {os.path.getsize(paths['pkl']) / 2**20:.0f} MiB): CPU "
          f"{cpu:.2f} s, load+score {res_pk['seconds']:.2f} s; peak RSS {rss:.0f} MiB")
    # exactness and speed ratio against the slow loop reference on a subset of images
    from rlipv2.evaluation import vcoco

    sub_path = _vcoco_subset(workdir, vc, ids[:subset], "sub")
    sub_dets = rv.arrays_to_dicts(arrays, meta, images=ids[:subset])
    t = time.perf_counter()
    gt = vcoco.load_vcoco_gt(sub_path, coco, workdir / "sub.ids")
    fast = vcoco.evaluate_vcoco(gt, vcoco.detections_from_dicts(sub_dets, gt))["vcoco"]
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    slow = rv.reference_vcoco(json.loads(sub_path.read_text()), coco, ids[:subset], sub_dets)
    t_slow = time.perf_counter() - t
    same = all(fast[k] == slow[k] for k in fast)
    print(f"   reference on {subset} images: identical={same}; slow {t_slow:.2f} s vs fast {t_fast:.3f} s "
          f"({t_slow / t_fast:.0f}x; the slow loop scans one image's detections, vsrl_eval scans all of them)")


def _vcoco_subset(workdir, vc, keep_list, name):
    keep_list = [int(i) for i in keep_list]
    keep_ids = set(keep_list)
    out = []
    for x in vc:
        n = len(x["ann_id"])
        keep = [k for k in range(n) if x["image_id"][k] in keep_ids]
        rid = np.array(x["role_object_id"]).reshape(len(x["role_name"]), n)[:, keep]
        out.append({**x, "ann_id": [x["ann_id"][k] for k in keep], "label": [x["label"][k] for k in keep],
                    "image_id": [x["image_id"][k] for k in keep], "role_object_id": rid.reshape(-1).tolist()})
    path = workdir / f"{name}_vcoco.json"
    path.write_text(json.dumps(out))
    np.savetxt(workdir / f"{name}.ids", keep_list, fmt="%d")
    return path


def main():
    from rlipv2.utils.cli import positive_int

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=positive_int, default=9546)
    ap.add_argument("--queries", type=positive_int, default=100)
    ap.add_argument("--subset", type=positive_int, default=200, help="images for the slow-reference cross-check")
    ap.add_argument("--vcoco-images", type=positive_int, default=4946)
    ap.add_argument("--vcoco-dets", type=positive_int, default=100)
    ap.add_argument("--pickle-images", type=positive_int, default=500, help="images timed through the pickle path")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--skip", choices=("hico", "vcoco"), action="append", default=[])
    args = ap.parse_args()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="rlipv2_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if "hico" not in args.skip:
            bench_hico(workdir, args.images, args.queries, min(args.subset, args.images))
        if "vcoco" not in args.skip:
            bench_vcoco(workdir, args.vcoco_images, args.vcoco_dets, min(50, args.vcoco_images),
                        min(args.pickle_images, args.vcoco_images))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
