#!/usr/bin/env python
"""Detect relation triplets in your own images, with free-form object and relation names.

    python tools/demo.py --config-file CFG --weights model_final.pth --input img.jpg_or_dir \
        --objects "person, horse, dog" --relations "ride, walk, feed" [--score-thresh 0.3] \
        --output out/demo [key=value ...]

Writes, into --output, one drawing per image (``<name>.jpg``: subject boxes in blue, object boxes
in orange, a line per relation with its label and score) and ``triplets.json``
(``{"objects", "relations", "images": [{"file_name", "height", "width", "triplets": [...]}]}``).
Every file is written atomically. The trailing ``key=value`` pairs override the config (keys must
exist). An image without any triplet at ``--score-thresh`` gets a printed line with the best score
found and a lower threshold to try (``best_score`` is in ``triplets.json`` too).

An image that cannot be read (corrupt, or above --max-pixels: 64 megapixels by default) is skipped and
listed under ``"skipped": [{"file_name", "error"}]``; the others are still processed and ``triplets.json``
is still written. The exit status is 0 when at least one image was processed, 2 otherwise. Large images
are shrunk right after decoding to the test resolution; boxes are reported in the original image's pixels.
"""
import argparse
import logging
import math
import os
import sys

from detectron2.utils.logger import setup_logger

from rlipv2.engine.demo_outputs import (
    add_model_and_drawing_arguments,
    detect_and_draw,
    drawing_name,
    encode_jpeg,
    triplets_document,
)
from rlipv2.engine.predictor import RelationPredictor, parse_label_list
from rlipv2.utils.file_io import atomic_write_bytes, atomic_write_json
from rlipv2.utils.image_io import UnreadableImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def get_parser() -> argparse.ArgumentParser:
    from rlipv2.utils.cli import positive_int, unit_interval

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE", help="LazyConfig with a `model`")
    p.add_argument("--weights", default=None, help="checkpoint (default: train.init_checkpoint of the config)")
    p.add_argument("--input", required=True, help="an image file or a directory of images")
    p.add_argument("--objects", required=True, help='comma-separated object names, e.g. "person, horse, dog"')
    p.add_argument("--relations", required=True, help='comma-separated relation names, e.g. "ride, walk, feed"')
    p.add_argument("--score-thresh", type=unit_interval, default=0.3, help="minimum triplet score")
    p.add_argument("--top-k", type=positive_int, default=100, help="at most this many triplets per image")
    add_model_and_drawing_arguments(p)  # --nms-thresh, --max-draw, --draw-min-size, --min-size, --max-size, ...
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


def below_threshold_message(path: str, best_score: float | None, score_thresh: float) -> str:
    """The line printed for an image without any triplet at or above ``--score-thresh``."""
    if best_score is None:
        return f"{path}: no triplet: the model returned no subject-object pairs"
    lower = max(0.0, math.floor(best_score * 100) / 100)
    return (f"{path}: no triplet scored >= {score_thresh:g}; the best score was {best_score:.3f}. "
            f"Lower the threshold to see the best guesses, e.g. --score-thresh {lower:g}")


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
            image, name, size = predictor.load_image(path)  # possibly shrunk; size: the file's (H, W)
        except UnreadableImageError as e:  # corrupt, too large, unsupported bit depth: skip it, report it
            logger.warning(f"skipped {path}: {e}")
            skipped.append({"file_name": path, "error": str(e)})
            continue
        result, drawing = detect_and_draw(predictor, image, name, objects, relations, max_draw=args.max_draw,
                                          draw_min_size=args.draw_min_size, original_size=size)
        result["visualization"] = drawing_name(path, used_names)  # a.png and a.jpg in one directory: a_1.jpg
        atomic_write_bytes(os.path.join(args.output, result["visualization"]), encode_jpeg(drawing))
        results.append(result)
        logger.info(f"{path}: {len(result['triplets'])} triplets -> {result['visualization']}")
        if not result["triplets"]:
            print(below_threshold_message(path, result["best_score"], args.score_thresh), flush=True)
    document = triplets_document(objects, relations, args.score_thresh, results)
    document["skipped"] = skipped
    atomic_write_json(os.path.join(args.output, "triplets.json"), document, nan="null")
    logger.info(f"wrote {len(results)} drawings and triplets.json to {args.output}"
                + (f"; skipped {len(skipped)} unreadable image(s): {', '.join(s['file_name'] for s in skipped)}"
                   if skipped else ""))
    if not results:
        print(f"demo.py: error: no image could be processed ({skipped[0]['error']})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover
