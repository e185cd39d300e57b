"""A tiny hand-made COCO-format detection set with JPEGs and a captions file, with known bad input."""
import json

import pytest
from PIL import Image

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 19, "name": "horse"}, {"id": 47, "name": "cup"},
              {"id": 200, "name": "gizmo"}]  # "gizmo" has no COCO paraphrase
# image id -> (width, height, [(category id, [x, y, w, h])])
IMAGES = {
    1: (64, 48, [(1, [2, 2, 20, 40]), (19, [20, 10, 40, 30]), (1, [40, 5, 20, 40])]),
    2: (40, 56, [(1, [0, 0, 30, 50]), (47, [10, 30, 8, 8])]),
    3: (48, 48, [(19, [5, 5, 30, 30]), (200, [1, 1, 5, 5])]),
    4: (50, 40, [(1, [1, 1, 20, 30]), (19, [10, 10, 30, 20])]),  # its JPEG is missing
    5: (32, 32, [(1, [1, 1, 10, 10])]),  # no caption
}
CAPTIONS = {
    "1": ["A man is riding a horse on the beach.", "A woman standing next to a horse.", ""],
    "2": ["A man holding a cup.", "A person drinks from a cup"],
    "3": ["A horse next to a gizmo."],
    "4": ["A man riding a horse."],
    "77": ["An image that the detection file does not have."],
}


@pytest.fixture
def tiny_coco(tmp_path):
    """Write the set; return dict(detection_json, image_root, captions_json, root)."""
    root = tmp_path / "data"
    img_dir = root / "images"
    img_dir.mkdir(parents=True)
    images, anns = [], []
    ann_id = 1
    for image_id, (w, h, boxes) in IMAGES.items():
        fname = f"{image_id:012d}.jpg"
        images.append({"id": image_id, "file_name": fname, "width": w, "height": h})
        if image_id != 4:
            Image.new("RGB", (w, h), (image_id * 40 % 256, 100, 200)).save(img_dir / fname, quality=90)
        for cat, box in boxes:
            anns.append({"id": ann_id, "image_id": image_id, "category_id": cat, "bbox": box, "iscrowd": 0,
                         "area": box[2] * box[3]})
            ann_id += 1
    anns.append({"id": 900, "image_id": 1, "category_id": 1, "bbox": [0, 0, 64, 48], "iscrowd": 1, "area": 1.0})
    anns.append({"id": 901, "image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 0, "area": 1.0})
    det = root / "instances.json"
    det.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    caps = root / "captions.json"
    caps.write_text(json.dumps(CAPTIONS))
    return {"detection_json": str(det), "image_root": str(img_dir), "captions_json": str(caps), "root": root}
