"""Fixture files in every official format, written by the tests into a temporary folder."""

import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
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


@pytest.fixture
def hico_files(tmp_path):
    root = tmp_path / "hico"
    for i, e in enumerate(hico_entries()):
        write_image(str(root / "images" / e["file_name"]), seed=i)
    js = write_json(root / "ann.json", hico_entries())
    return js, str(root / "images")


@pytest.fixture
def vcoco_files(tmp_path):
    root = tmp_path / "vcoco"
    entries = [
        {
            "file_name": "COCO_train2014_000000000042.jpg",
            "annotations": [{"bbox": [1, 2, 30, 40], "category_id": 1}, {"bbox": [20, 10, 60, 45], "category_id": 3}],
            "hoi_annotation": [
                {"subject_id": 0, "object_id": -1, "category_id": 1},  # stand, no object
                {"subject_id": 0, "object_id": 1, "category_id": 0},
            ],
        }
    ]  # hold car
    write_image(str(root / "images" / entries[0]["file_name"]))
    return write_json(root / "ann.json", entries), str(root / "images")


@pytest.fixture
def oi_files(tmp_path):
    root = tmp_path / "oi"
    all_cats = write_json(root / "categories_dict.json", {"obj": ["Zebra", "Man", "Guitar", "Car"], "rel": []})
    cats = write_json(root / "cats.json", {"obj": ["Man", "Guitar", "Car"], "rel": ["plays", "holds", "at"]})
    entries = [
        {
            "file_name": "abc.jpg",
            "annotations": [{"bbox": [1, 1, 30, 40], "category_id": 1}, {"bbox": [10, 20, 40, 45], "category_id": 2}],
            "rel_annotations": [{"subject_id": 0, "object_id": 1, "category_id": 0}],
        }
    ]
    write_image(str(root / "images" / "abc.jpg"))
    return write_json(root / "ann.json", entries), str(root / "images"), cats, all_cats


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


@pytest.fixture
def vg_files(tmp_path):
    root = tmp_path / "vg"
    for i in (7, 8):
        write_image(str(root / "images" / f"{i}.jpg"), seed=i)
    return write_json(root / "sg.json", vg_entries()), str(root / "images")


@pytest.fixture
def coco_pseudo_files(tmp_path):
    root = tmp_path / "coco"
    for i in (7, 8):
        write_image(str(root / "train2017" / f"{i:012d}.jpg"), seed=i)
    return write_json(root / "pseudo.json", vg_entries(confidence=True)), str(root)


@pytest.fixture
def registered():
    """Names registered by a test; removed afterwards."""
    names = []
    yield names
    for n in names:
        if n in DatasetCatalog:
            DatasetCatalog.remove(n)
        if n in MetadataCatalog:
            MetadataCatalog.remove(n)
