"""What the relation demos make of a prediction: drawings, the ``triplets.json`` document and table rows.

Shared by ``tools/demo.py`` (files in an output directory) and ``tools/web_demo.py`` (a page and an
HTTP API, through :mod:`rlipv2.engine.web_demo`), so that both draw and serialise predictions alike.

``triplets.json``::

    {"objects": [...], "relations": [...], "score_thresh": 0.3,
     "images": [{"file_name", "height", "width", "objects", "relations", "visualization": "<name>.jpg",
                 "triplets": [{"subject": {"box", "label", "label_id", "score"}, "object": {...} or None,
                               "relation", "relation_id", "score"}, ...]}, ...]}

Boxes are ``[x1, y1, x2, y2]`` in pixels of the original image.
"""
from __future__ import annotations

import argparse
import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..utils.cli import nonnegative_int, positive_int, unit_interval
from ..utils.image_io import MAX_IMAGE_PIXELS
from ..utils.visualizer import draw_relation_triplets, scale_triplet_boxes
from .predictor import RelationPredictor

__all__ = ["TABLE_HEADERS", "add_model_and_drawing_arguments", "detect_and_draw", "drawing_name", "encode_jpeg",
           "triplet_table", "triplets_document"]

TABLE_HEADERS = ["image", "subject", "relation", "object", "score", "subject box", "object box"]


def add_model_and_drawing_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tools/demo.py`` and ``tools/web_demo.py`` on the model and on drawing: ``--nms-thresh``,
    ``--max-draw``, ``--draw-min-size``, ``--min-size``, ``--max-size``, ``--device``, ``--truncate-queries``,
    ``--max-pixels``. Numbers are checked when parsed (``rlipv2.utils.cli``)."""
    p = parser
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


def detect_and_draw(
    predictor: RelationPredictor,
    image_rgb: np.ndarray,
    file_name: str,
    objects: Sequence[str],
    relations: Sequence[str],
    *,
    score_thresh: float | None = None,
    top_k: int | None = None,
    max_draw: int | None = 20,
    draw_min_size: int | None = 480,
    original_size: tuple[int, int] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Detect the triplets of one image and draw them.

    Args:
        image_rgb: (H, W, 3) uint8 RGB, as returned by ``predictor.read_image``.
        file_name: recorded as the result's ``file_name``.
        score_thresh, top_k: override the predictor's for this image (None: the predictor's).
        max_draw: draw at most this many triplets (highest scores).
        draw_min_size: drawings of smaller images are upscaled to this shortest side (readable labels).
        original_size: (height, width) of the file when ``image_rgb`` is a shrunk copy of it
            (``predictor.load_image``): the result's boxes are then in the file's pixels.

    Returns:
        the predictor's result (``{"file_name", "height", "width", "objects", "relations", "triplets"}``)
        and the (H', W', 3) uint8 RGB drawing.
    """
    result = predictor.predict_rgb(image_rgb, file_name, objects, relations, score_thresh=score_thresh, top_k=top_k,
                                   original_size=original_size)
    shown = scale_triplet_boxes(result["triplets"], image_rgb.shape[0] / max(1, result["height"]))
    drawing = draw_relation_triplets(image_rgb, shown, max_triplets=max_draw, min_size=draw_min_size)
    return result, drawing


def drawing_name(file_name: str, used: set[str]) -> str:
    """``<stem>.jpg`` for the drawing of ``file_name``, made unique against ``used`` (then added to it).

    ``a.png`` and ``a.jpg`` in one request give ``a.jpg`` and ``a_1.jpg``.
    """
    stem = os.path.splitext(os.path.basename(file_name))[0] or "image"
    name, k = f"{stem}.jpg", 1
    while name in used:
        name, k = f"{stem}_{k}.jpg", k + 1
    used.add(name)
    return name


def encode_jpeg(image_rgb: np.ndarray, quality: int = 92) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(image_rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def triplets_document(objects: Sequence[str], relations: Sequence[str], score_thresh: float,
                      images: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``triplets.json`` document of one run: the vocabulary, the threshold and the per-image results."""
    return {"objects": list(objects), "relations": list(relations), "score_thresh": float(score_thresh),
            "images": list(images)}


def _box_text(box: Sequence[float] | None) -> str:
    return "" if box is None else "[" + ", ".join(f"{float(x):.1f}" for x in box) + "]"


def triplet_table(document: dict[str, Any]) -> list[list[Any]]:
    """One row per triplet of a ``triplets.json`` document, columns :data:`TABLE_HEADERS`, best score first.

    ``image`` is the base name of the image file; ``score`` is rounded to 4 decimals; boxes are text.
    """
    rows = []
    for image in document["images"]:
        name = os.path.basename(image.get("file_name") or "") or image.get("visualization", "")
        for t in image["triplets"]:
            obj = t.get("object")
            rows.append([name, t["subject"]["label"], t["relation"], obj["label"] if obj else "",
                         round(float(t["score"]), 4), _box_text(t["subject"]["box"]),
                         _box_text(obj["box"] if obj else None)])
    rows.sort(key=lambda r: -r[4])
    return rows
