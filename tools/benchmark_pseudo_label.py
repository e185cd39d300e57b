#!/usr/bin/env python
"""Throughput of the pseudo-labelling stages on a synthetic COCO-format set (CPU, one process).

Prints images/s and captions/s per stage, the speed-up of batched parsing over one-by-one parsing, and
what one rank at that speed would need for Objects365 (about 1.7 M images and 17 M captions). The tagger
is the untrained ``RandomTagger`` (its cost is not the R-Tagger's), so the tag figure measures the
pipeline's own overhead (image decoding, batching, bookkeeping) only.

    python tools/benchmark_pseudo_label.py --images 200 --captions-per-image 10
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUBJECTS = ["a man", "a woman", "a young boy", "a skateboarder", "two people", "a girl"]
PREDICATES = ["riding", "holding", "sitting on", "standing next to", "looking at", "walking with", "on", "near"]
OBJECTS = {"horse": "a brown horse", "bicycle": "a bike", "bench": "a wooden bench", "laptop": "a laptop",
           "frisbee": "a frisbee", "dog": "a small dog", "umbrella": "a red umbrella", "cup": "a cup of coffee"}
CATS = [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}, {"id": 15, "name": "bench"},
        {"id": 18, "name": "dog"}, {"id": 19, "name": "horse"}, {"id": 28, "name": "umbrella"},
        {"id": 34, "name": "frisbee"}, {"id": 47, "name": "cup"}, {"id": 73, "name": "laptop"}]


def make_dataset(root: str, n_images: int, caps_per_image: int, seed: int = 0) -> dict:
    from PIL import Image

    rng = random.Random(seed)
    name_to_id = {c["name"]: c["id"] for c in CATS}
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    images, anns, captions = [], [], {}
    for i in range(1, n_images + 1):
        w, h = 160, 120
        fname = f"{i:012d}.jpg"
        Image.new("RGB", (w, h), (rng.randrange(256), rng.randrange(256), rng.randrange(256))).save(
            os.path.join(root, "images", fname), quality=85)
        images.append({"id": i, "file_name": fname, "width": w, "height": h})
        objs = rng.sample(list(OBJECTS), 3)
        for cat in ["person", "person"] + objs:
            x, y = rng.uniform(0, w - 30), rng.uniform(0, h - 30)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": name_to_id[cat],
                         "bbox": [x, y, rng.uniform(10, 30), rng.uniform(10, 30)], "iscrowd": 0})
        captions[str(i)] = [f"{rng.choice(SUBJECTS)} {rng.choice(PREDICATES)} {OBJECTS[rng.choice(objs)]} "
                            f"in the park." for _ in range(caps_per_image)]
    det = os.path.join(root, "instances.json")
    with open(det, "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": CATS}, f)
    caps = os.path.join(root, "captions.json")
    with open(caps, "w") as f:
        json.dump(captions, f)
    return {"detection_json": det, "captions_json": caps, "image_root": os.path.join(root, "images"),
            "captions": [c for cs in captions.values() for c in cs]}


def main():
    from rlipv2.utils.cli import nonnegative_int, positive_int

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=positive_int, default=200)
    ap.add_argument("--captions-per-image", type=positive_int, default=10)
    ap.add_argument("--shard-size", type=positive_int, default=100)
    ap.add_argument("--num-workers", type=nonnegative_int, default=0)
    args = ap.parse_args()

    from rlipv2.pseudo_labeling import PipelineConfig, PseudoLabelPipeline
    from rlipv2.pseudo_labeling.parsing import get_parser, parse_caption, parse_captions

    with tempfile.TemporaryDirectory() as tmp:
        d = make_dataset(tmp, args.images, args.captions_per_image)
        n_caps = len(d["captions"])
        parser = get_parser()
        sample = d["captions"][: min(300, n_caps)]
        t = time.perf_counter()
        for c in sample:
            parse_caption(c, parser)
        one = len(sample) / (time.perf_counter() - t)
        t = time.perf_counter()
        parse_captions(sample, parser)
        batched = len(sample) / (time.perf_counter() - t)
        print(f"parsing: one by one {one:.0f} captions/s, batched {batched:.0f} captions/s "
              f"(x{batched / one:.2f})")

        cfg = PipelineConfig(detection_json=d["detection_json"], captions_json=d["captions_json"],
                             image_root=d["image_root"], output_dir=os.path.join(tmp, "out"),
                             shard_size=args.shard_size, num_workers=args.num_workers, progress=False,
                             tagger_kwargs={"seed": 0})
        pipe = PseudoLabelPipeline(cfg, rank=0, world_size=1, barrier=lambda: None)
        pipe.build_index()
        o365_images, o365_captions = 1.7e6, 17e6
        print(f"{'stage':<9} {'seconds':>8} {'images/s':>9} {'captions/s':>11} {'O365 hours on 1 rank':>21}")
        for stage in ("captions", "parse", "match", "tag", "write", "merge"):
            t = time.perf_counter()
            getattr(pipe, f"run_{stage}")()
            dt = time.perf_counter() - t
            ips = args.images / dt
            hours = o365_images / ips / 3600
            cps = f"{n_caps / dt:11.0f}" if stage == "parse" else f"{'':>11}"
            if stage == "parse":
                hours = o365_captions / (n_caps / dt) / 3600
            print(f"{stage:<9} {dt:8.2f} {ips:9.1f} {cps} {hours:21.1f}")


if __name__ == "__main__":
    main()
