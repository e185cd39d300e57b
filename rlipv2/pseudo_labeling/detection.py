"""Reading a COCO-format detection file into the per-image box lists the pipeline works on.

The pipeline labels relations between the *ground-truth* boxes of a detection dataset (COCO,
Objects365 or a user's own, in COCO format). As in the official code, crowd boxes are dropped, boxes
are clamped to the image, and boxes left with no area are dropped; annotations that break the file's
schema (``rlipv2.schemas.coco``: a NaN box, a non-integer id) are dropped too; each drop is counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rlipv2.schemas.coco import check_detection_file, validate_detection_annotations

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


def load_detection_json(path: str, allow_outside_root: bool = False) -> DetectionSet:
    """Load a COCO-format detection file (``images``, ``annotations``, ``categories``).

    The file's rules are those of :mod:`rlipv2.schemas.coco`: a bad image or category record is an error
    naming the file, the record and the field; a bad annotation (a NaN or non-numeric box, a non-integer
    id, ...) is dropped and counted as ``annotation_dropped_<problem kind>``. The returned
    :class:`DetectionSet`'s ``issues`` also count annotations naming an image or category that the file
    does not define (``annotation_image_missing``, ``annotation_category_missing``), crowd boxes
    (``crowd_box_dropped``) and boxes with no area after clamping (``degenerate_box_dropped``).
    """
    data = read_json(path, "detection file")
    ctx = {"allow_outside_root": allow_outside_root}
    image_records, category_records = check_detection_file(data, path, ctx)
    issues = IssueLog()
    categories = [{"id": c["id"], "name": c["name"]} for c in category_records]
    cat_ids = {c["id"] for c in categories}
    images: list[ImageRecord] = []
    by_id: dict[str, ImageRecord] = {}
    for im in image_records:
        rec = ImageRecord(im["id"], im["file_name"], im["height"], im["width"])
        by_id[image_key(im["id"])] = rec
        images.append(rec)

    checked = validate_detection_annotations(data["annotations"], path, ctx)
    for p in checked.problems:
        issues.add(f"annotation_dropped_{p.kind}", str(p))
    for i, ann in checked.records:
        raw = data["annotations"][i]
        rec = by_id.get(image_key(ann["image_id"]))
        if rec is None:
            issues.add("annotation_image_missing", f"annotation #{i} (id {raw.get('id')}) -> image {ann['image_id']}")
            continue
        if ann["category_id"] not in cat_ids:
            issues.add("annotation_category_missing",
                       f"annotation #{i} (id {raw.get('id')}) -> category {ann['category_id']}")
            continue
        if ann.get("iscrowd", 0):
            issues.add("crowd_box_dropped", f"annotation #{i} (id {raw.get('id')}) in image {rec.image_id}")
            continue
        x, y, w, h = ann["bbox"]
        x1, x2 = min(max(x, 0.0), rec.width), min(max(x + w, 0.0), rec.width)
        y1, y2 = min(max(y, 0.0), rec.height), min(max(y + h, 0.0), rec.height)
        if x2 <= x1 or y2 <= y1:
            issues.add("degenerate_box_dropped", f"annotation #{i} (id {raw.get('id')}) in image {rec.image_id}")
            continue
        rec.boxes.append([x1, y1, x2 - x1, y2 - y1])
        rec.category_ids.append(ann["category_id"])
    return DetectionSet(images, categories, issues)
