#!/usr/bin/env python
"""Throughput of ``RelationDatasetMapper`` (images/s per worker, JPEG decode included).

Writes HICO-like JPEGs (640x480 by default, natural-image-like content, 4-8 boxes and 2-6
relations each) and maps them with the official training augmentations (flip, colour jitter,
multi-scale 480-800 / max 1333 or resize -> random-size crop -> multi-scale) in one process,
i.e. one data-loader worker. Target: at least 25 images/s per CPU worker.

    python tools/benchmark_data.py [--images 40] [--iters 200] [--size 640x480] [--test]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

TARGET = 25.0
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's rlipv2


def _write_images(folder, n, w, h, seed=0):
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    dicts = []
    for i in range(n):
        base = rng.integers(0, 255, size=(h // 8, w // 8, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
        d = ImageDraw.Draw(img)
        anns = []
        for _ in range(int(rng.integers(4, 9))):
            x1, y1 = rng.uniform(0, w - 40), rng.uniform(0, h - 40)
            x2, y2 = min(w, x1 + rng.uniform(30, w / 2)), min(h, y1 + rng.uniform(30, h / 2))
            d.rectangle([x1, y1, x2, y2], outline=tuple(int(c) for c in rng.integers(0, 255, 3)), width=3)
            anns.append({"bbox": [x1, y1, x2, y2], "bbox_mode": 0, "category_id": int(rng.integers(0, 80))})
        noise = rng.normal(0, 8, size=(h, w, 3))
        img = Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8))
        path = os.path.join(folder, f"HICO_train2015_{i:08d}.jpg")
        img.save(path, quality=90)
        rels = [
            {
                "subject": 0,
                "object": int(rng.integers(1, len(anns))),
                "predicate": int(rng.integers(0, 117)),
                "confidence": 1.0,
            }
            for _ in range(int(rng.integers(2, 7)))
        ]
        dicts.append(
            {
                "file_name": path,
                "image_id": i,
                "height": h,
                "width": w,
                "annotations": anns,
                "relations": rels,
                "dataset_name": "hico_det_train",
            }
        )
    return dicts


def main(argv=None):
    from rlipv2.utils.cli import positive_int

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=positive_int, default=40)
    ap.add_argument("--iters", type=positive_int, default=200)
    ap.add_argument("--size", default="640x480", help="WxH of the JPEGs (HICO-DET images are about 640x480)")
    ap.add_argument("--test", action="store_true", help="benchmark the test-time mapper instead")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))

    import cv2
    import torch

    torch.set_num_threads(1)  # one data-loader worker = one thread
    cv2.setNumThreads(1)
    import rlipv2  # noqa: F401
    from rlipv2.data import RelationDatasetMapper

    with tempfile.TemporaryDirectory() as tmp:
        dicts = _write_images(tmp, args.images, w, h)
        mapper = RelationDatasetMapper(is_train=not args.test)
        np.random.seed(0)
        for d in dicts[:5]:  # warm-up
            mapper(d)
        t_decode = time.perf_counter()
        from rlipv2.data.relation_dataset_mapper import read_image

        for k in range(args.iters):
            read_image(dicts[k % len(dicts)]["file_name"])
        t_decode = (time.perf_counter() - t_decode) / args.iters
        pixels, t0 = 0, time.perf_counter()
        for k in range(args.iters):
            out = mapper(dicts[k % len(dicts)])
            pixels += out["image"].shape[1] * out["image"].shape[2]
        dt = time.perf_counter() - t0
    ips = args.iters / dt
    mode = "test" if args.test else "train"
    print(f"RelationDatasetMapper ({mode}, official augmentations) on {w}x{h} JPEGs, 1 worker:")
    print(
        f"  {ips:.1f} images/s per worker ({1000 * dt / args.iters:.1f} ms/image, of which JPEG decode "
        f"{1000 * t_decode:.1f} ms); mean output {pixels / args.iters / 1e6:.2f} Mpixel"
    )
    verdict = "PASS" if ips >= TARGET else "BELOW"
    print(f"  target >= {TARGET:.0f} images/s per worker: ratio {ips / TARGET:.2f} -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
