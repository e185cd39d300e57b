"""Reading a COCO-format detection file into the per-image box lists the pipeline works on.

The pipeline labels relations between the *ground-truth* boxes of a detection dataset (COCO,
Objects365 or a user's own, in COCO format). As in the official code, crowd boxes are dropped, boxes
are clamped to the image, and boxes left with no area are dropped; each dropped box is counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .io import IssueLog, read_json

__all__ = ["ImageRecord", "DetectionSet", "load_detection_json", "image_key"]


def image_key(image_id) -> str:
    """Image ids are compared as strings (JSON object keys are strings; COCO ids are ints)."""
    return str(image_id)


@dataclass
class ImageRecord:
    """One image with its kept ground-truth boxes.

    ``boxes`` are [x, y, w, h] in absolute pixels (top-left corner), ``category_ids`` the detection
    file's category ids, aligned with ``boxes``.
    """

    image_id: int | str
    file_name: str
    height: int
    width: int
    boxes: list[list[float]] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "image_id": self.image_id,
            "file_name": self.file_name,
            "height": self.height,
            "width": self.width,
            "boxes": self.boxes,
            "category_ids": self.category_ids,
        }

    @classmethod
    def from_json(cls, d: dict) -> ImageRecord:
        return cls(d["image_id"], d["file_name"], d["height"], d["width"], d["boxes"], d["category_ids"])


@dataclass
class DetectionSet:
    """The images (in file order) and categories (``[{"id", "name"}]``, in file order) of a detection file."""

    images: list[ImageRecord]
    categories: list[dict]
    issues: IssueLog


def _require(record: dict, keys: tuple, path: str, what: str, index: int) -> None:
    for k in keys:
        if k not in record:
            raise ValueError(f"{path}: {what} #{index} has no field '{k}' (record: {str(record)[:200]})")


def load_detection_json(path: str) -> DetectionSet:
    """Load a COCO-format detection file (``images``, ``annotations``, ``categories``).

    Returns a :class:`DetectionSet` whose ``issues`` count: annotations naming an image or category
    that the file does not define (``annotation_image_missing``, ``annotation_category_missing``),
    crowd boxes (``crowd_box_dropped``) and boxes with no area after clamping (``degenerate_box_dropped``).
    """
    data = read_json(path, "detection file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a COCO-format detection file must be a JSON object")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{path}: missing top-level field '{key}' (not a COCO-format detection file?)")
    issues = IssueLog()

    categories = []
    cat_ids = set()
    for i, c in enumerate(data["categories"]):
        _require(c, ("id", "name"), path, "category", i)
        categories.append({"id": c["id"], "name": c["name"]})
        cat_ids.add(c["id"])

    images: list[ImageRecord] = []
    by_id: dict[str, ImageRecord] = {}
    for i, im in enumerate(data["images"]):
        _require(im, ("id", "file_name", "height", "width"), path, "image", i)
        rec = ImageRecord(im["id"], im["file_name"], int(im["height"]), int(im["width"]))
        key = image_key(im["id"])
        if key in by_id:
            raise ValueError(f"{path}: image id {im['id']} appears twice in 'images' (record #{i})")
        by_id[key] = rec
        images.append(rec)

    for i, ann in enumerate(data["annotations"]):
        _require(ann, ("image_id", "bbox", "category_id"), path, "annotation", i)
        rec = by_id.get(image_key(ann["image_id"]))
        if rec is None:
            issues.add("annotation_image_missing", f"annotation #{i} (id {ann.get('id')}) -> image {ann['image_id']}")
            continue
        if ann["category_id"] not in cat_ids:
            issues.add(
                "annotation_category_missing", f"annotation #{i} (id {ann.get('id')}) -> category {ann['category_id']}"
            )
            continue
        if ann.get("iscrowd", 0):
            issues.add("crowd_box_dropped", f"annotation #{i} (id {ann.get('id')}) in image {rec.image_id}")
            continue
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ValueError(f"{path}: annotation #{i} field 'bbox' must be [x, y, w, h], got {bbox!r}")
        x1, y1 = float(bbox[0]), float(bbox[1])
        x2, y2 = x1 + float(bbox[2]), y1 + float(bbox[3])
        x1, x2 = min(max(x1, 0.0), rec.width), min(max(x2, 0.0), rec.width)
        y1, y2 = min(max(y1, 0.0), rec.height), min(max(y2, 0.0), rec.height)
        if x2 <= x1 or y2 <= y1:
            issues.add("degenerate_box_dropped", f"annotation #{i} (id {ann.get('id')}) in image {rec.image_id}")
            continue
        rec.boxes.append([x1, y1, x2 - x1, y2 - y1])
        rec.category_ids.append(ann["category_id"])
    return DetectionSet(images, categories, issues)
