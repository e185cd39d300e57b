#!/usr/bin/env python
"""Detect relation triplets in your own images, with free-form object and relation names.

    python tools/demo.py --config-file CFG --weights model_final.pth --input img.jpg_or_dir \
        --objects "person, horse, dog" --relations "ride, walk, feed" [--score-thresh 0.3] \
        --output out/demo [key=value ...]

Writes, into --output, one drawing per image (``<name>.jpg``: subject boxes in blue, object boxes
in orange, a line per relation with its label and score) and ``triplets.json``
(``{"objects", "relations", "images": [{"file_name", "height", "width", "triplets": [...]}],
"skipped": [{"file_name", "error"}]}``). Every file is written atomically. The trailing ``key=value``
pairs override the config.

An image that cannot be read (corrupt, or above --max-pixels: 64 megapixels by default) is skipped and
listed under ``skipped``; the others are still processed and ``triplets.json`` is still written. The exit
status is 0 when at least one image was processed, 2 otherwise. Large images are shrunk right after
decoding to the test resolution; boxes are reported in the original image's pixels.
"""
import argparse
import io
import logging
import os
import sys

from detectron2.utils.logger import setup_logger
from PIL import Image

from rlipv2.engine.predictor import RelationPredictor, parse_label_list
from rlipv2.utils.file_io import atomic_write_bytes, atomic_write_json
from rlipv2.utils.image_io import MAX_IMAGE_PIXELS, UnreadableImageError
from rlipv2.utils.visualizer import draw_relation_triplets, scale_triplet_boxes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def get_parser() -> argparse.ArgumentParser:
    from rlipv2.utils.cli import nonnegative_int, positive_int, unit_interval

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE", help="LazyConfig with a `model`")
    p.add_argument("--weights", default=None, help="checkpoint (default: train.init_checkpoint of the config)")
    p.add_argument("--input", required=True, help="an image file or a directory of images")
    p.add_argument("--objects", required=True, help='comma-separated object names, e.g. "person, horse, dog"')
    p.add_argument("--relations", required=True, help='comma-separated relation names, e.g. "ride, walk, feed"')
    p.add_argument("--score-thresh", type=unit_interval, default=0.3, help="minimum triplet score")
    p.add_argument("--top-k", type=positive_int, default=100, help="at most this many triplets per image")
    p.add_argument("--nms-thresh", type=unit_interval, default=0.5, help="triplet NMS IoU (1 disables)")
    p.add_argument("--max-draw", type=nonnegative_int, default=20, help="draw at most this many triplets per image")
    p.add_argument("--draw-min-size", type=positive_int, default=480,
                   help="drawings of smaller images are upscaled to this shortest side, so labels stay readable")
    p.add_argument("--min-size", type=positive_int, default=800, help="test resize: shortest side")
    p.add_argument("--max-size", type=positive_int, default=1333, help="test resize: longest side cap")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--truncate-queries", action="store_true", help="official 200->128 query truncation on load")
    p.add_argument("--max-pixels", type=positive_int, default=None,
                   help=f"refuse images above this many pixels (default {MAX_IMAGE_PIXELS:,}, or "
                        "$RLIPV2_MAX_IMAGE_PIXELS)")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def list_images(path: str) -> list[str]:
    """The image files under ``path`` (a file or a directory, not recursive), sorted."""
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in directory '{path}'")
        return files
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--input '{path}' is neither a file nor a directory")
    return [path]


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logger = logging.getLogger("rlipv2")
    if not logger.handlers:  # not already set up by a caller (tools/run_demo.py): avoid doubled lines
        logger = setup_logger(name="rlipv2")
    objects, relations = parse_label_list(args.objects), parse_label_list(args.relations)
    predictor = RelationPredictor(
        args.config_file,
        args.weights,
        opts=args.opts,
        min_size=args.min_size,
        max_size=args.max_size,
        score_thresh=args.score_thresh,
        top_k=args.top_k,
        nms_thresh=args.nms_thresh,
        device=args.device,
        truncate_queries=args.truncate_queries,
        max_pixels=args.max_pixels,
    )
    os.makedirs(args.output, exist_ok=True)
    results, skipped = [], []
    used_names: set[str] = set()
    for path in list_images(args.input):
        try:
            result = predictor(path, objects, relations)
            image, _ = predictor.read_image(path)  # possibly shrunk: the boxes are scaled to it for drawing
        except UnreadableImageError as e:  # corrupt, too large, unsupported bit depth: skip it, report it
            logger.warning(f"skipped {path}: {e}")
            skipped.append({"file_name": path, "error": str(e)})
            continue
        r = image.shape[0] / max(1, result["height"])
        scale = max(1.0, args.draw_min_size / max(1, min(image.shape[:2])))
        drawing = draw_relation_triplets(image, scale_triplet_boxes(result["triplets"], r), max_triplets=args.max_draw,
                                         scale=scale)
        stem = os.path.splitext(os.path.basename(path))[0]
        name, k = f"{stem}.jpg", 1
        while name in used_names:  # a.png and a.jpg in the same directory
            name, k = f"{stem}_{k}.jpg", k + 1
        used_names.add(name)
        buf = io.BytesIO()
        Image.fromarray(drawing).save(buf, format="JPEG", quality=92)
        atomic_write_bytes(os.path.join(args.output, name), buf.getvalue())
        result["visualization"] = name
        results.append(result)
        logger.info(f"{path}: {len(result['triplets'])} triplets -> {name}")
    atomic_write_json(
        os.path.join(args.output, "triplets.json"),
        {"objects": objects, "relations": relations, "score_thresh": args.score_thresh, "images": results,
         "skipped": skipped},
        nan="null",
    )
    logger.info(f"wrote {len(results)} drawings and triplets.json to {args.output}"
                + (f"; skipped {len(skipped)} unreadable image(s): {', '.join(s['file_name'] for s in skipped)}"
                   if skipped else ""))
    if not results:
        print(f"demo.py: error: no image could be processed ({skipped[0]['error']})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover
