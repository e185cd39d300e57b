#!/usr/bin/env python
"""Evaluators side by side with the official algorithms, on full-size synthetic prediction sets.

For each setting it prints the official (reference) time, ours, the ratio, the goal, the peak memory
(RSS) of each process, and whether the metrics are identical:

- ``hico``: HICO-DET, 9,546 images x 100 queries x 117 verbs, ``qpic`` protocol, no NMS;
- ``hico_nms``: HICO-DET, 9,546 x 64 queries + triplet NMS (the RLIPv2 setting); also the wall-time
  goal of 2.5 s for our whole process on one core;
- ``oi``: Open Images v6, 5,322 images x 100 queries x 30 predicates, RLIPv2 protocol (top-100 and
  top-50 runs, triplet and phrase NMS);
- ``vcoco``: V-COCO, 4,946 images x 100 detections. The official vsrl_eval scans the whole detection
  list for every image, so its time grows quadratically with the number of images: it is timed on
  subsets of growing size (``--vcoco-subsets``), a quadratic ``t(n) = a n^2 + b n + c`` is fitted by
  least squares (``numpy.polyfit``, degree 2) and evaluated at 4,946 images. Ours runs on the full set.

"Official" = the re-implementations of the official algorithms in ``tests/evaluation/``
(``reference_hico.reference_qpic``, ``reference_oi.reference_oi_rlipv2``,
``official_vsrl_eval.VsrlEvalLike``), run in their own process; only the scoring call is timed (their
inputs are already in memory). "Ours" = the whole ``python -m rlipv2.evaluation.<x>`` process: interpreter
start, imports, reading and validating the files, scoring, writing the JSON. Every process is pinned
to one core (``taskset -c 0``) with one thread. Runs are interleaved (official, ours, official, ours,
...) and the best of each is kept; peak RSS is the process's own VmHWM.

Usage: python tools/benchmark_eval.py [--only hico hico_nms oi vcoco] [--repeats 3] [--official-repeats 1]
    [--scale 1.0] [--vcoco-subsets 250,500,1000] [--official-images N] [--workdir DIR [--generate-only]]

``--official-images N`` is for time-limited runs: the HICO-DET / OI official algorithms are then timed on
the first N images and their time scaled by (images / N) (both are linear in the number of images:
per-image loops, then one pass over the detections of each class); metrics are compared with ours on
those N images. ``--workdir`` keeps the generated sets and reuses them (``--generate-only`` makes them).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlipv2.evaluation.hico_io import METADATA_DIR, hico_coco80_ids, write_npz_atomic  # noqa: E402

GOAL_RATIO = 30.0
GOAL_HICO_NMS_WALL = 2.5
FULL = {"hico": 9546, "hico_nms": 9546, "oi": 5322, "vcoco": 4946}
QUERIES = {"hico": 100, "hico_nms": 64, "oi": 100, "vcoco": 100}
HICO_KEYS = ("mAP", "mAP_rare", "mAP_non_rare", "mean_max_recall")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "evaluation" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------------------------- data


def make_hico(n_images: int, num_queries: int, seed: int = 0):
    """Synthetic HICO-DET-like GT / training JSON records and raw per-query predictions."""
    rng = np.random.default_rng(seed)
    cm = np.load(METADATA_DIR / "corre_hico.npy")
    coco = np.asarray(hico_coco80_ids())
    verbs_of_obj = [np.nonzero(cm[:, o])[0] for o in range(cm.shape[1])]
    nv = cm.shape[0]
    gt_records, preds = [], []

    def rand_box():
        xy = rng.uniform(0, 500, 2)
        return np.r_[xy, xy + rng.uniform(20, 200, 2)]

    for i in range(n_images):
        boxes, labels, hois = [], [], []
        for _ in range(int(rng.integers(1, 5))):
            o = int(rng.integers(80))
            boxes += [rand_box(), rand_box()]
            labels += [0, o]
            hois.append((len(boxes) - 2, len(boxes) - 1, int(rng.choice(verbs_of_obj[o]))))
        boxes = np.round(np.asarray(boxes), 1)
        gt_records.append({
            "file_name": f"HICO_test2015_{i:08d}.jpg",
            "annotations": [{"bbox": b.tolist(), "category_id": int(coco[lab])} for b, lab in zip(boxes, labels)],
            "hoi_annotation": [{"subject_id": s, "object_id": o, "category_id": v + 1} for s, o, v in hois]})
        q = num_queries
        pb = np.empty((2 * q, 4), np.float32)
        pl = np.zeros(2 * q, np.int64)
        vs = (rng.random((q, nv), dtype=np.float32) ** 4) * 0.6
        for j in range(q):
            if rng.random() < 0.3:
                s, o, v = hois[rng.integers(len(hois))]
                pb[j], pb[q + j] = boxes[s] + rng.normal(0, 12, 4), boxes[o] + rng.normal(0, 12, 4)
                pl[q + j] = labels[o] if rng.random() < 0.9 else rng.integers(80)
                vs[j, v] = np.float32(rng.random())
            else:
                pb[j], pb[q + j] = rand_box(), rand_box()
                pl[q + j] = rng.integers(80)
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2])
        preds.append((pb, pl, vs))
    train = []  # every valid class with a random count (about a quarter rare)
    for v, o in zip(*np.nonzero(cm)):
        c = int(rng.integers(1, 10)) if rng.random() < 0.23 else int(rng.integers(10, 40))
        train += [(v, o)] * c
    train_records = [{"file_name": "train.jpg",
                      "annotations": [{"bbox": [0, 0, 10, 10], "category_id": 1}] +
                                     [{"bbox": [0, 0, 10, 10], "category_id": int(coco[o])} for _, o in train],
                      "hoi_annotation": [{"subject_id": 0, "object_id": k + 1, "category_id": int(v) + 1}
                                         for k, (v, _) in enumerate(train)]}]
    return cm, coco, gt_records, train_records, preds


def write_hico(workdir: Path, n_images: int, num_queries: int) -> None:
    cm, coco, gt_records, train_records, preds = make_hico(n_images, num_queries)
    (workdir / "test_hico.json").write_text(json.dumps(gt_records))
    (workdir / "trainval_hico.json").write_text(json.dumps(train_records))
    np.save(workdir / "corre_hico.npy", cm)

    def arrays():
        yield "file_names", np.array([r["file_name"] for r in gt_records])
        for i, (pb, pl, vs) in enumerate(preds):
            yield f"boxes_{i}", pb
            yield f"labels_{i}", coco[pl]
            yield f"verb_scores_{i}", vs
            yield f"sub_ids_{i}", np.arange(num_queries)
            yield f"obj_ids_{i}", np.arange(num_queries, 2 * num_queries)

    write_npz_atomic(workdir / "preds.npz", arrays())


def write_oi(workdir: Path, n_images: int, num_queries: int, num_objects: int = 601, num_rels: int = 30,
             seed: int = 0) -> None:
    """Synthetic OI_SGG_test.json-like GT (1-4 relations per image) and raw per-query predictions."""
    rng = np.random.default_rng(seed)
    gt, q = [], num_queries

    def rand_box():
        xy = rng.uniform(0, 500, 2)
        return np.r_[xy, xy + rng.uniform(20, 200, 2)]

    def arrays():
        yield "file_names", np.array([f"oi_{i:06d}.jpg" for i in range(n_images)])
        for i in range(n_images):
            boxes, labels, rels = [], [], []
            for _ in range(int(rng.integers(1, 5))):
                boxes += [rand_box(), rand_box()]
                labels += [int(rng.integers(num_objects)), int(rng.integers(num_objects))]
                rels.append((len(boxes) - 2, len(boxes) - 1, int(rng.integers(num_rels))))
            boxes = np.round(np.asarray(boxes), 1)
            gt.append({"file_name": f"oi_{i:06d}.jpg",
                       "annotations": [{"bbox": b.tolist(), "category_id": c} for b, c in zip(boxes, labels)],
                       "rel_annotations": [{"subject_id": s, "object_id": o, "category_id": r} for s, o, r in rels]})
            pb = np.empty((2 * q, 4), np.float32)
            pl = np.empty(2 * q, np.int64)
            rs = (rng.random((q, num_rels), dtype=np.float32) ** 4) * 0.6
            for j in range(q):
                if rng.random() < 0.3:
                    s, o, r = rels[rng.integers(len(rels))]
                    pb[j], pb[q + j] = boxes[s] + rng.normal(0, 12, 4), boxes[o] + rng.normal(0, 12, 4)
                    pl[j] = labels[s]
                    pl[q + j] = labels[o] if rng.random() < 0.9 else rng.integers(num_objects)
                    rs[j, r] = np.float32(rng.random())
                else:
                    pb[j], pb[q + j] = rand_box(), rand_box()
                    pl[j], pl[q + j] = rng.integers(num_objects), rng.integers(num_objects)
            pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2])
            yield f"boxes_{i}", pb
            yield f"labels_{i}", pl
            yield f"rel_scores_{i}", rs
            yield f"sub_ids_{i}", np.arange(q)
            yield f"obj_ids_{i}", np.arange(q, 2 * q)

    write_npz_atomic(workdir / "preds.npz", arrays())
    (workdir / "oi_test.json").write_text(json.dumps(gt))
    (workdir / "oi_object_ids.json").write_text(json.dumps(list(range(num_objects))))


def write_vcoco(workdir: Path, n_images: int, n_dets: int, subsets) -> list:
    rv = _load("reference_vcoco")
    vc, coco, ids, arrays = rv.make_synthetic_vcoco(n_images, n_dets, seed=0, as_numpy="arrays")
    (workdir / "vcoco_test.json").write_text(json.dumps(vc))
    (workdir / "instances_vcoco_all_2014.json").write_text(json.dumps(coco))
    np.savetxt(workdir / "vcoco_test.ids", ids, fmt="%d")
    write_npz_atomic(workdir / "dets.npz", arrays.items())
    for n in subsets:
        _vcoco_subset(workdir, vc, ids[:n], f"sub{n}")
    return ids


def _vcoco_subset(workdir, vc, keep_list, name):
    keep_ids = set(int(i) for i in keep_list)
    out = []
    for x in vc:
        n = len(x["ann_id"])
        keep = [k for k in range(n) if x["image_id"][k] in keep_ids]
        rid = np.array(x["role_object_id"]).reshape(len(x["role_name"]), n)[:, keep]
        out.append({**x, "ann_id": [x["ann_id"][k] for k in keep], "label": [x["label"][k] for k in keep],
                    "image_id": [x["image_id"][k] for k in keep], "role_object_id": rid.reshape(-1).tolist()})
    (workdir / f"{name}_vcoco.json").write_text(json.dumps(out))
    np.savetxt(workdir / f"{name}.ids", [int(i) for i in keep_list], fmt="%d")


# ------------------------------------------------------------------------------------ processes


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _pinned(cmd):
    return ["taskset", "-c", "0", *cmd] if shutil.which("taskset") else cmd


_HWM = "hwm = [int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')]"


def run_ours(module: str, args: list):
    """Whole process of ``python -m module args``: (wall s, peak RSS MiB, stdout)."""
    code = (f"import runpy, sys; sys.argv = [sys.argv[0]] + sys.argv[1:]; runpy.run_module({module!r}, "
            f"run_name='__main__'); {_HWM}; print('PEAK_RSS_KB', hwm[0] if hwm else -1)")
    t = time.perf_counter()
    p = subprocess.run(_pinned([sys.executable, "-c", code, *args]), capture_output=True, text=True, env=_env(),
                       cwd=ROOT)
    wall = time.perf_counter() - t
    if p.returncode:
        raise RuntimeError(f"{module} failed:\n{p.stdout}\n{p.stderr}")
    kb = [int(ln.split()[1]) for ln in p.stdout.splitlines() if ln.startswith("PEAK_RSS_KB")][-1]
    return wall, kb / 1024, p.stdout


def run_official(setting: str, workdir: Path, extra=()):
    """The reference in its own process: (seconds of the scoring call, peak RSS MiB, result dict)."""
    cmd = _pinned([sys.executable, str(Path(__file__).resolve()), "--official-run", setting, "--workdir",
                   str(workdir), *extra])
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT)
    if p.returncode:
        raise RuntimeError(f"official {setting} failed:\n{p.stdout}\n{p.stderr}")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("OFFICIAL ")][-1]
    return json.loads(line[len("OFFICIAL "):])


def official_main(setting: str, workdir: Path, subset: int | None) -> None:
    """Entry point of the reference process: load the inputs, time the scoring call only."""
    res = {}
    if setting in ("hico", "hico_nms"):
        ref = _load("reference_hico")
        from rlipv2.evaluation.hico_io import IdMaps, NpzReader, gt_images_from_json, train_counts_from_json

        cm = np.load(workdir / "corre_hico.npy")
        ids = IdMaps.from_spec(cm)
        gts = gt_images_from_json(workdir / "test_hico.json", ids)
        counts = train_counts_from_json(workdir / "trainval_hico.json", ids)
        z = NpzReader(workdir / "preds.npz")
        plist = [{"boxes": np.array(z[f"boxes_{i}"]), "labels": ids.objects(z[f"labels_{i}"], ""),
                  "verb_scores": np.array(z[f"verb_scores_{i}"]), "sub_ids": np.array(z[f"sub_ids_{i}"]),
                  "obj_ids": np.array(z[f"obj_ids_{i}"])} for i in range(len(gts))]
        rare = [t for t, c in counts.items() if c < 10]
        non = [t for t, c in counts.items() if c >= 10]
        nms = (0.7, 1.0, 0.5) if setting == "hico_nms" else None
        if subset:
            gts, plist = gts[:subset], plist[:subset]
        t = time.perf_counter()
        summary, _ = ref.reference_qpic(plist, gts, cm, rare, non, top_k=100, nms=nms)
        res["seconds"] = time.perf_counter() - t
        res["metrics"] = {k: float(summary[k]) for k in HICO_KEYS}
        if subset:  # ours on the same images, in process
            from rlipv2.evaluation.hico_core import CandidateSelector, HOIGroundTruth, score_hico

            sel = CandidateSelector(cm, 100, "qpic")
            for i, pr in enumerate(plist):
                sel.add(i, pr["boxes"], pr["labels"], pr["verb_scores"], pr["sub_ids"], pr["obj_ids"])
            ours = score_hico(HOIGroundTruth.from_images(gts), sel.finish(), cm, train_counts=counts,
                              nms=nms is not None, keep_curves=False).summary
            res["identical_to_ours"] = _same(ours, res["metrics"], HICO_KEYS)
    elif setting == "oi":
        ro = _load("reference_oi")
        from rlipv2.evaluation.hico_io import NpzReader

        data = json.loads((workdir / "oi_test.json").read_text())
        gts = [{"boxes": np.array([a["bbox"] for a in r["annotations"]], np.float32).reshape(-1, 4),
                "labels": np.array([a["category_id"] for a in r["annotations"]], np.int64),
                "rels": [(h["subject_id"], h["object_id"], h["category_id"]) for h in r["rel_annotations"]]}
               for r in data]
        z = NpzReader(workdir / "preds.npz")
        preds = [{k: np.array(z[f"{k}_{i}"]) for k in ("boxes", "labels", "rel_scores", "sub_ids", "obj_ids")}
                 for i in range(len(gts))]
        if subset:
            gts, preds = gts[:subset], preds[:subset]
        t = time.perf_counter()
        r100 = ro.reference_oi_rlipv2(preds, gts, 100, True)
        r50 = ro.reference_oi_rlipv2(preds, gts, 50, True)
        res["seconds"] = time.perf_counter() - t
        res["metrics"] = {"R@50": r50["R_rel"], "wmAP_rel": r100["wmAP_rel"], "wmAP_phr": r100["wmAP_phr"],
                          "mAP_rel": r100["mAP_rel"], "mAP_phr": r100["mAP_phr"], "R@100": r100["R_rel"],
                          "R_phr@100": r100["R_phr"]}
        if subset:  # ours on the same images, in process
            from rlipv2.evaluation.hico_core import HOIGroundTruth
            from rlipv2.evaluation.oi_core import evaluate_oi

            gt = HOIGroundTruth.from_images([{"file_name": str(i), "boxes": g["boxes"], "labels": g["labels"],
                                              "hois": np.asarray(g["rels"], np.int64).reshape(-1, 3)}
                                             for i, g in enumerate(gts)])
            raw = [(i, pr["boxes"], pr["labels"], pr["rel_scores"], pr["sub_ids"], pr["obj_ids"], str(i))
                   for i, pr in enumerate(preds)]
            ours = evaluate_oi(gt, raw, 601, 30, "rlipv2", nms=True)["oi"]
            res["identical_to_ours"] = _same(ours, res["metrics"], list(res["metrics"]))
    elif setting == "vcoco":
        ov, rv = _load("official_vsrl_eval"), _load("reference_vcoco")
        from rlipv2.evaluation import vcoco
        from rlipv2.evaluation.hico_io import NpzReader

        name = f"sub{subset}"
        vc = json.loads((workdir / f"{name}_vcoco.json").read_text())
        coco = json.loads((workdir / "instances_vcoco_all_2014.json").read_text())
        ids = np.loadtxt(workdir / f"{name}.ids", dtype=np.int64, ndmin=1)
        meta = json.loads((METADATA_DIR / "vcoco_actions.json").read_text())["actions"]
        z = NpzReader(workdir / "dets.npz")
        arrays = {k: np.array(z[k]) for k in ("image_ids", "person_boxes", "agent_scores", "role_boxes")}
        dets = rv.arrays_to_dicts(arrays, meta, images=ids.tolist())
        evaluator = ov.VsrlEvalLike(vc, coco, ids)
        t = time.perf_counter()
        official = evaluator.evaluate(dets)
        res["seconds"] = time.perf_counter() - t
        gt = vcoco.load_vcoco_gt(workdir / f"{name}_vcoco.json", coco, workdir / f"{name}.ids")
        ours = vcoco.evaluate_vcoco(gt, vcoco.detections_from_dicts(dets, gt))["vcoco"]
        res["metrics"] = official
        res["identical_to_ours"] = all(official[k] == ours[k] for k in official)
    with open("/proc/self/status") as f:
        hwm = [int(x.split()[1]) for x in f if x.startswith("VmHWM")]
    res["peak_rss_mib"] = hwm[0] / 1024 if hwm else -1
    print("OFFICIAL " + json.dumps(res))


# ------------------------------------------------------------------------------------- settings


def _same(a: dict, b: dict, keys) -> bool:
    def eq(x, y):
        return x == y or (x is None and y != y) or (y is None and x != x) or (x != x and y != y)

    return all(eq(a.get(k), b.get(k)) for k in keys)


def bench_setting(setting: str, workdir: Path, n_images: int, repeats: int, official_repeats: int,
                  official_images: int | None = None) -> dict:
    q = QUERIES[setting]
    t = time.perf_counter()
    have = (workdir / "preds.npz").exists() and (workdir / "n_images").exists() and \
        (workdir / "n_images").read_text() == str(n_images)
    if setting in ("hico", "hico_nms"):
        if not have:
            write_hico(workdir, n_images, q)
        out = workdir / "ours.json"
        args = ["--gt", str(workdir / "test_hico.json"), "--pred", str(workdir / "preds.npz"), "--rare-from",
                str(workdir / "trainval_hico.json"), "--correct-mat", str(workdir / "corre_hico.npy"), "--json-out",
                str(out)] + (["--nms"] if setting == "hico_nms" else [])
        module, keys = "rlipv2.evaluation.hico", HICO_KEYS
    else:
        if not have:
            write_oi(workdir, n_images, q)
        out = workdir / "ours.json"
        args = ["--gt", str(workdir / "oi_test.json"), "--pred", str(workdir / "preds.npz"), "--object-ids",
                str(workdir / "oi_object_ids.json"), "--json-out", str(out)]
        module, keys = "rlipv2.evaluation.oi", ("R@50", "wmAP_rel", "wmAP_phr", "mAP_rel", "mAP_phr", "R@100",
                                                 "R_phr@100")
    (workdir / "n_images").write_text(str(n_images))
    print(f"   data {'reused' if have else 'generated'} in {time.perf_counter() - t:.0f} s "
          f"({os.path.getsize(workdir / 'preds.npz') / 2**20:.0f} MiB of predictions)", flush=True)
    sub = official_images if official_images and official_images < n_images else None
    ours_t, ours_rss, off_t, off_rss, official = [], [], [], [], None
    for r in range(max(repeats, official_repeats)):
        if r < official_repeats:
            official = run_official(setting, workdir, ["--subset", str(sub)] if sub else [])
            scale = n_images / sub if sub else 1.0
            off_t.append(official["seconds"] * scale)
            off_rss.append(official["peak_rss_mib"])
            print(f"   run {r + 1}: official {official['seconds']:.1f} s" + (
                f" on {sub} images, x {scale:.2f} = {official['seconds'] * scale:.1f} s (metrics equal to ours "
                f"on those images: {official['identical_to_ours']})" if sub else ""), flush=True)
        if r < repeats:
            wall, rss, _ = run_ours(module, args)
            ours_t.append(wall)
            ours_rss.append(rss)
            print(f"   run {r + 1}: ours {wall:.2f} s", flush=True)
    res = json.loads(out.read_text())
    metrics = res["hoi"] if "hoi" in res else res["oi"]
    identical = official["identical_to_ours"] if sub else _same(metrics, official["metrics"], keys)
    note = f"scoring call on {sub} images, scaled linearly" if sub else "scoring call, same set"
    return {"official": min(off_t), "official_rss": max(off_rss), "ours": min(ours_t), "ours_rss": max(ours_rss),
            "identical": identical, "ours_metrics": {k: metrics[k] for k in keys},
            "official_metrics": official["metrics"], "official_note": note}


def bench_vcoco(workdir: Path, n_images: int, subsets, repeats: int, official_repeats: int) -> dict:
    t = time.perf_counter()
    marker = f"{n_images} {subsets}"
    have = (workdir / "n_images").exists() and (workdir / "n_images").read_text() == marker
    if not have:
        write_vcoco(workdir, n_images, QUERIES["vcoco"], subsets)
    (workdir / "n_images").write_text(marker)
    print(f"   data {'reused' if have else 'generated'} in {time.perf_counter() - t:.0f} s", flush=True)
    base = ["--vcoco-test", str(workdir / "vcoco_test.json"), "--coco", str(workdir / "instances_vcoco_all_2014.json"),
            "--ids", str(workdir / "vcoco_test.ids"), "--det", str(workdir / "dets.npz"), "--json-out",
            str(workdir / "ours.json")]
    times = {n: [] for n in subsets}
    rss, same, ours_t, ours_rss = [], [], [], []
    for r in range(max(repeats, official_repeats)):
        if r < official_repeats:
            for n in subsets:
                o = run_official("vcoco", workdir, ["--subset", str(n)])
                times[n].append(o["seconds"])
                rss.append(o["peak_rss_mib"])
                same.append(o["identical_to_ours"])
                print(f"   run {r + 1}: official on {n} images {o['seconds']:.1f} s (metrics equal to ours: "
                      f"{o['identical_to_ours']})", flush=True)
        if r < repeats:
            wall, peak, _ = run_ours("rlipv2.evaluation.vcoco", base)
            ours_t.append(wall)
            ours_rss.append(peak)
            print(f"   run {r + 1}: ours {wall:.2f} s", flush=True)
    ns = np.array(subsets, float)
    ts = np.array([min(times[n]) for n in subsets])
    coef = np.polyfit(ns, ts, 2)
    lin = np.polyfit(ns, ts, 1)
    print("   official times: " + ", ".join(f"{int(n)} images {t:.1f} s" for n, t in zip(ns, ts)))
    if coef[0] >= 0:
        official = float(np.polyval(coef, n_images))
        print(f"   quadratic least-squares fit t(n) = {coef[0]:.3e} n^2 + {coef[1]:.3e} n + {coef[2]:.2f}: "
              f"{official:.0f} s at {n_images} images (a linear fit would say {np.polyval(lin, n_images):.0f} s)")
    else:  # noise on too small subsets: never extrapolate a negative curvature
        official = float(np.polyval(lin, n_images))
        print(f"   the quadratic fit has a negative n^2 term ({coef[0]:.3e}, noise): linear fit t(n) = {lin[0]:.3e} n "
              f"+ {lin[1]:.2f} used instead: {official:.0f} s at {n_images} images")
    return {"official": official, "official_rss": max(rss), "ours": min(ours_t), "ours_rss": max(ours_rss),
            "identical": all(same), "official_note": f"extrapolated from {', '.join(str(n) for n in subsets)} images"}


def machine() -> str:
    cpu = "unknown"
    try:
        cpu = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")][0]
    except (OSError, IndexError):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}; {os.cpu_count()} logical cores; Python {platform.python_version()}, numpy {np.__version__}; "
            f"load average {load}")


def main():
    from rlipv2.utils.cli import positive_int

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(FULL), default=list(FULL))
    ap.add_argument("--repeats", type=positive_int, default=3, help="runs of ours per setting (best kept)")
    ap.add_argument("--official-repeats", type=positive_int, default=1, help="runs of the official (best kept)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full image counts (quick runs)")
    ap.add_argument("--vcoco-subsets", default="250,500,1000", help="images of the timed official V-COCO runs")
    ap.add_argument("--official-images", type=positive_int, default=None,
                    help="time-limited runs: time the HICO-DET / OI official on the first N images and scale "
                    "linearly (metrics compared with ours on those images); default: the full set")
    ap.add_argument("--generate-only", action="store_true", help="write the data sets into --workdir and stop")
    ap.add_argument("--workdir", default=None, help="keep (and reuse) the generated data here")
    ap.add_argument("--official-run", choices=list(FULL), help=argparse.SUPPRESS)
    ap.add_argument("--subset", type=positive_int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.official_run:
        official_main(args.official_run, Path(args.workdir), args.subset)
        return
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="rlipv2_bench_eval_"))
    print(f"machine: {machine()}")
    rows = []
    try:
        for setting in args.only:
            n = max(2, int(round(FULL[setting] * args.scale)))
            wd = root / setting
            wd.mkdir(parents=True, exist_ok=True)
            print(f"== {setting}: {n} images x {QUERIES[setting]} queries", flush=True)
            if setting == "vcoco":
                subsets = sorted({max(2, min(n, int(s) if args.scale == 1.0 else int(round(int(s) * args.scale))))
                                  for s in args.vcoco_subsets.split(",")})
                if len(subsets) < 3:
                    subsets = sorted({max(2, n // 4), max(3, n // 2), n})
                if args.generate_only:
                    write_vcoco(wd, n, QUERIES[setting], subsets)
                    (wd / "n_images").write_text(f"{n} {subsets}")
                    continue
                r = bench_vcoco(wd, n, subsets, args.repeats, args.official_repeats)
            else:
                if args.generate_only:
                    (write_hico if setting != "oi" else write_oi)(wd, n, QUERIES[setting])
                    (wd / "n_images").write_text(str(n))
                    continue
                r = bench_setting(setting, wd, n, args.repeats, args.official_repeats, args.official_images)
            r.update(setting=setting, images=n)
            rows.append(r)
            if not args.workdir:
                shutil.rmtree(wd, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    print("\nsetting | images | official | ours (whole process) | ratio | goal | peak RSS official / ours | metrics")
    for r in rows:
        ratio = r["official"] / r["ours"]
        goal = f">= {GOAL_RATIO:.0f}x"
        ok = ratio >= GOAL_RATIO
        if r["setting"] == "hico_nms":
            goal += f" and <= {GOAL_HICO_NMS_WALL} s"
            ok = ok and r["ours"] <= GOAL_HICO_NMS_WALL
        print(f"{r['setting']:8s} | {r['images']} | {r['official']:.1f} s ({r['official_note']}) | {r['ours']:.2f} s | "
              f"ratio {ratio:.1f}x | goal {goal} -> {'PASS' if ok else 'FAIL'} | {r['official_rss']:.0f} / "
              f"{r['ours_rss']:.0f} MiB | {'identical' if r['identical'] else 'DIFFERENT'}")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
