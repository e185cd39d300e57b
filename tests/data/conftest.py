"""Fixture files in every official format, written by the tests into a temporary folder."""

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from relation_fixtures import hico_entries, vg_entries, write_image, write_json


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
