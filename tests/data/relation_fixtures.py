"""Helpers that write small annotation files in the official formats (used by the data tests)."""

import json
import os

import numpy as np
from PIL import Image


def write_image(path, w=64, h=48, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)).save(path, quality=90)


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


def hico_entries():
    """Two HICO-DET images: COCO-91 ids (1 person, 18 dog, 37 sports ball), verbs 1..117."""
    return [
        {
            "file_name": "HICO_train2015_00000001.jpg",
            "annotations": [
                {"bbox": [1, 2, 30, 40], "category_id": 1},
                {"bbox": [20, 10, 60, 45], "category_id": 18},
                {"bbox": [5, 5, 15, 15], "category_id": 37},
            ],
            "hoi_annotation": [
                {"subject_id": 0, "object_id": 1, "category_id": 58},  # no_interaction dog
                {"subject_id": 0, "object_id": 2, "category_id": 45},
            ],
        },  # kick sports ball
        {
            "file_name": "HICO_train2015_00000002.jpg",
            "annotations": [{"bbox": [0, 0, 64, 48], "category_id": 1}, {"bbox": [10, 10, 20, 20], "category_id": 90}],
            "hoi_annotation": [{"subject_id": 0, "object_id": 1, "category_id": 117}],
        },
    ]


def vg_entries(confidence=False):
    e = [
        {
            "image_id": 7,
            "objects": [
                {"object_id": 100, "x": 1, "y": 2, "w": 20, "h": 30, "names": "man"},
                {"object_id": 101, "x": 25, "y": 5, "w": 30, "h": 20, "names": ["horse"]},
                {"object_id": 102, "x": 2, "y": 30, "w": 10, "h": 10, "names": "man"},
            ],
            "relationships": [
                {"relationship_id": 1, "predicate": "riding", "subject_id": 100, "object_id": 101},
                {"relationship_id": 2, "predicate": "next to", "subject_id": 102, "object_id": 100},
            ],
        },
        {
            "image_id": 8,
            "objects": [{"object_id": 200, "x": 0, "y": 0, "w": 10, "h": 10, "names": "man"}],
            "relationships": [],
        },
    ]
    if confidence:
        e[0]["relationships"][0]["confidence"] = 0.9
        e[0]["relationships"][1]["confidence"] = 0.1
        for x in e:
            x["dataset"], x["data_split"] = "coco2017", "train2017"
    return e
