#!/usr/bin/env python
"""Time the schema layer (``rlipv2/schemas``) on generated HICO-DET-sized files.

    python tools/benchmark_schemas.py [--images 40000] [--repeats 3]

Generates a HICO-like JSON (``--images`` records, 1-8 boxes and 1-6 relations each, like
``trainval_hico.json``: 37,633 images, 117,871 relations) and a Visual-Genome-like one, then times,
interleaved and best of ``--repeats``: ``json.load`` of the file, the schema check alone, the whole
dataset loader (``load_hoi_json`` / ``load_vg_json`` without image reads) and the HICO evaluation GT
reader (``gt_from_json``). Prints seconds and the ratio of the schema check to ``json.load``, and the
load average, since the machine may be shared.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's rlipv2

from rlipv2.utils.cli import positive_int  # noqa: E402


def hico_like(n: int, rng: random.Random) -> list[dict]:
    objects = [1, 2, 3, 18, 37, 44, 62, 90]
    out = []
    for i in range(n):
        k = rng.randint(2, 8)
        boxes = []
        for _ in range(k):
            x, y = rng.uniform(0, 500), rng.uniform(0, 400)
            boxes.append({"bbox": [round(x, 1), round(y, 1), round(x + rng.uniform(5, 120), 1),
                                   round(y + rng.uniform(5, 80), 1)], "category_id": rng.choice(objects)})
        hois = [{"subject_id": 0, "object_id": rng.randrange(k), "category_id": rng.randint(1, 117)}
                for _ in range(rng.randint(1, 6))]
        out.append({"file_name": f"HICO_train2015_{i:08d}.jpg", "img_id": i, "annotations": boxes,
                    "hoi_annotation": hois})
    return out


def vg_like(n: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        objs = [{"object_id": 10 * i + k, "x": rng.uniform(0, 400), "y": rng.uniform(0, 300),
                 "w": rng.uniform(1, 100), "h": rng.uniform(1, 100), "names": rng.choice(["man", "shirt", "tree"])}
                for k in range(rng.randint(2, 12))]
        rels = [{"relationship_id": 100 * i + k, "predicate": rng.choice(["on", "wearing", "has"]),
                 "subject_id": rng.choice(objs)["object_id"], "object_id": rng.choice(objs)["object_id"]}
                for k in range(rng.randint(1, 8))]
        out.append({"image_id": i, "objects": objs, "relationships": rels})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=positive_int, default=40_000)
    p.add_argument("--repeats", type=positive_int, default=3)
    args = p.parse_args(argv)

    import logging

    from rlipv2.data.datasets.hoi_format import load_hoi_json
    from rlipv2.data.datasets.visual_genome import load_vg_json
    from rlipv2.evaluation.hico_io import IdMaps, gt_from_json
    from rlipv2.schemas.hico import HICO_SCHEMA
    from rlipv2.schemas.vg import VG_SCHEMA

    logging.disable(logging.WARNING)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as d:
        hico_path, vg_path = os.path.join(d, "hico.json"), os.path.join(d, "vg.json")
        with open(hico_path, "w") as f:
            json.dump(hico_like(args.images, rng), f)
        with open(vg_path, "w") as f:
            json.dump(vg_like(args.images, rng), f)
        hico, vg = json.load(open(hico_path)), json.load(open(vg_path))
        n_hoi = sum(len(r["hoi_annotation"]) for r in hico)
        objects = {i: k for k, i in enumerate([1, 2, 3, 18, 37, 44, 62, 90])}
        verbs = {i: i - 1 for i in range(1, 118)}
        ids = IdMaps(sorted(objects), 1, 117)
        ctx = {"object_ids": objects, "predicate_ids": verbs}

        def load(path):
            with open(path) as f:
                return json.load(f)

        tasks = {
            "HICO json.load": lambda: load(hico_path),
            "HICO schema check": lambda: HICO_SCHEMA.validate(hico, hico_path, ctx),
            "HICO dataset loader (schema + dicts)": lambda: load_hoi_json(
                hico_path, d, object_id_map=objects, predicate_id_map=verbs, read_sizes=False, entries=hico),
            "HICO evaluation GT reader (json.load + schema + arrays)": lambda: gt_from_json(hico_path, ids),
            "VG json.load": lambda: load(vg_path),
            "VG schema check": lambda: VG_SCHEMA.validate(vg, vg_path),
            "VG dataset loader (schema + dicts + vocabulary)": lambda: load_vg_json(
                vg_path, d, read_sizes=False, entries=vg),
        }
        best = {k: float("inf") for k in tasks}
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits every task alike
            for name, fn in tasks.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    print(f"{args.images} images ({n_hoi} HICO relations), best of {args.repeats}; load average "
          f"{open('/proc/loadavg').read().split()[0] if os.path.exists('/proc/loadavg') else 'n/a'}")
    for name, t in best.items():
        print(f"  {name:<58s} {t:6.2f} s")
    print(f"  ratio schema check / json.load: HICO {best['HICO schema check'] / best['HICO json.load']:.2f}, "
          f"VG {best['VG schema check'] / best['VG json.load']:.2f}")
    print(f"  per image: HICO {1e6 * best['HICO schema check'] / args.images:.0f} us, "
          f"VG {1e6 * best['VG schema check'] / args.images:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
