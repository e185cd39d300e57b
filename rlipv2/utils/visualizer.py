"""Drawing relation triplets on an image with Detectron2's :class:`Visualizer`.

Each triplet (see :func:`rlipv2.engine.predictor.relation_triplets`) is drawn as a subject box, an
object box (each with its label and score), a line joining the two box centres, and the relation
label with its score at the middle of that line. A box shared by several triplets is drawn once,
and the relations of one subject-object pair share one line and one joined label.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from detectron2.utils.colormap import colormap
from detectron2.utils.visualizer import Visualizer

__all__ = ["draw_relation_triplets", "scale_triplet_boxes"]

_SUBJECT_COLOR = (0.12, 0.47, 0.71)  # blue
_OBJECT_COLOR = (1.0, 0.50, 0.05)  # orange


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def draw_relation_triplets(
    image_rgb: np.ndarray,
    triplets: Sequence[dict[str, Any]],
    *,
    max_triplets: int | None = 20,
    scale: float = 1.0,
    min_size: int | None = None,
    font_size: float | None = None,
) -> np.ndarray:
    """Draw up to ``max_triplets`` triplets (highest score first) on an RGB image.

    Args:
        image_rgb: (H, W, 3) uint8 RGB image, in the coordinates of the triplet boxes.
        triplets: dicts with ``subject`` / ``object`` ({"box", "label", "score"}, object may be None),
            ``relation`` and ``score``.
        max_triplets: draw at most this many (None: all).
        scale: output scale of the Visualizer.
        min_size: upscale further, if needed, so that the drawing's shortest side is at least this
            (labels on small images stay readable); never downscales.
        font_size: text size (default: Detectron2's, proportional to the image size).

    Returns:
        (H', W', 3) uint8 RGB drawing.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image_rgb.shape}")
    if min_size:
        scale = max(scale, min_size / max(1, min(image_rgb.shape[:2])))
    vis = Visualizer(image_rgb, scale=scale)
    ordered = sorted(triplets, key=lambda t: -float(t["score"]))
    if max_triplets is not None:
        ordered = ordered[:max_triplets]
    line_colors = colormap(rgb=True, maximum=1)
    drawn: set[tuple] = set()

    def _key(entity: dict[str, Any]) -> tuple:
        return tuple(round(float(x), 1) for x in entity["box"]), entity["label"]

    def _box(entity: dict[str, Any], color) -> None:
        key = _key(entity)
        if key in drawn:
            return
        drawn.add(key)
        x1, y1, x2, y2 = entity["box"]
        vis.draw_box((x1, y1, x2, y2), edge_color=color)
        vis.draw_text(f"{entity['label']} {entity.get('score', 0.0):.2f}", (x1, y1), color=color,
                      horizontal_alignment="left", font_size=font_size)

    # Triplets of the same (subject, object) pair share one line; their relation labels are joined.
    pairs: dict[tuple, list[dict[str, Any]]] = {}
    for t in ordered:
        obj = t.get("object")
        key = (_key(t["subject"]), _key(obj) if obj is not None else None)
        pairs.setdefault(key, []).append(t)

    for i, group in enumerate(pairs.values()):
        t = group[0]
        label = ", ".join(f"{g['relation']} {float(g['score']):.2f}" for g in group)
        color = tuple(line_colors[i % len(line_colors)])
        _box(t["subject"], _SUBJECT_COLOR)
        if t.get("object") is None:
            cx, cy = _centre(t["subject"]["box"])
            vis.draw_text(label, (cx, cy), color=color, font_size=font_size)
            continue
        _box(t["object"], _OBJECT_COLOR)
        (sx, sy), (ox, oy) = _centre(t["subject"]["box"]), _centre(t["object"]["box"])
        vis.draw_line([sx, ox], [sy, oy], color=color)
        vis.draw_text(label, ((sx + ox) / 2, (sy + oy) / 2), color=color, font_size=font_size)
    return vis.get_output().get_image()


def scale_triplet_boxes(triplets: Sequence[dict[str, Any]], factor: float) -> list[dict[str, Any]]:
    """Copies of ``triplets`` with every box multiplied by ``factor``.

    ``RelationPredictor.read_image`` may return a shrunk copy of a large image while the triplets keep the
    file's pixels: draw them on it with ``scale_triplet_boxes(triplets, image.shape[0] / result["height"])``.
    """
    if factor == 1.0:
        return list(triplets)
    out = []
    for t in triplets:
        t = dict(t)
        for key in ("subject", "object"):
            if t.get(key) is not None:
                t[key] = dict(t[key], box=[v * factor for v in t[key]["box"]])
        out.append(t)
    return out
