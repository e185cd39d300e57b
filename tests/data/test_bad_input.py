"""Every bad-input case gives an error naming the file, the image and the field; validation
reports all problems with counts; the skip switch drops bad records with a warning."""

import copy
import logging
import os
import subprocess
import sys

import pytest
from detectron2.data import DatasetCatalog
from relation_fixtures import hico_entries, vg_entries, write_image, write_json

from rlipv2.data import RelationDataError, RelationDatasetMapper, register_relation_dataset, skip_bad_records
from rlipv2.data.validate import validate_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _hico_case(tmp_path, mutate):
    entries = hico_entries()
    mutate(entries)
    root = tmp_path / "imgs"
    for i, e in enumerate(hico_entries()):
        write_image(str(root / e["file_name"]), seed=i)
    return write_json(tmp_path / "bad.json", entries), str(root)


def _load(name, js, root, registered, fmt="hico", **kw):
    register_relation_dataset(name, js, root, format=fmt, **kw)
    registered.append(name)
    return DatasetCatalog.get(name)


CASES = {
    "box_outside_image": (
        lambda e: e[0]["annotations"][1].__setitem__("bbox", [20, 10, 200, 45]),
        "annotations[1].bbox",
        "outside",
        1,
    ),
    "inverted_box": (
        lambda e: e[0]["annotations"][0].__setitem__("bbox", [30, 2, 1, 40]),
        "annotations[0].bbox",
        "x2 < x1",
        1,
    ),
    "relation_index_out_of_range": (
        lambda e: e[1]["hoi_annotation"][0].__setitem__("object_id", 5),
        "hoi_annotation[0].object_id",
        "out of range",
        2,
    ),
    "unknown_object_category": (
        lambda e: e[0]["annotations"][2].__setitem__("category_id", 12),
        "annotations[2].category_id",
        "unknown object category",
        1,
    ),
    "unknown_verb": (
        lambda e: e[1]["hoi_annotation"][0].__setitem__("category_id", 118),
        "hoi_annotation[0].category_id",
        "unknown predicate",
        2,
    ),
    "missing_field": (lambda e: e[1].pop("annotations"), "annotations", "missing", 2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hico_bad_record_errors(case, tmp_path, registered):
    mutate, field, msg, image_no = CASES[case]
    js, root = _hico_case(tmp_path, mutate)
    with pytest.raises(RelationDataError) as ei:
        _load("t_bad", js, root, registered)
    text = str(ei.value)
    assert js in text and field in text and msg in text
    assert f"image 'HICO_train2015_0000000{image_no}.jpg'" in text


def test_missing_and_corrupt_image(tmp_path, registered):
    js, root = _hico_case(tmp_path, lambda e: None)
    os.remove(os.path.join(root, "HICO_train2015_00000002.jpg"))
    with pytest.raises(RelationDataError, match=r"HICO_train2015_00000002.jpg.*file_name.*not found"):
        _load("t_img1", js, root, registered)
    write_image(os.path.join(root, "HICO_train2015_00000002.jpg"))
    with open(os.path.join(root, "HICO_train2015_00000001.jpg"), "wb") as f:
        f.write(b"not a jpeg")
    with pytest.raises(RelationDataError, match=r"HICO_train2015_00000001.jpg.*file_name.*cannot read"):
        _load("t_img2", js, root, registered)


def test_malformed_json(tmp_path, registered):
    p = tmp_path / "broken.json"
    p.write_text('[{"file_name": "a.jpg", ')
    with pytest.raises(RelationDataError, match=r"broken.json.*malformed JSON"):
        _load("t_json", str(p), str(tmp_path), registered)


def test_vg_bad_relation_and_box(tmp_path, registered):
    e = vg_entries()
    e[0]["relationships"][0]["object_id"] = 999
    e[1]["objects"][0]["w"] = -5
    for i in (7, 8):
        write_image(str(tmp_path / f"{i}.jpg"))
    js = write_json(tmp_path / "vg.json", e)
    with pytest.raises(RelationDataError, match=r"vg.json: image 7: field 'relationships\[0\].object_id'"):
        _load("t_vgbad", js, str(tmp_path), registered, fmt="vg")
    problems, n_ok = validate_file(js, "vg", str(tmp_path))
    assert sorted(p.kind for p in problems) == ["inverted_box", "relation_index_out_of_range"] and n_ok == 0


def test_skip_bad_records_switch(tmp_path, registered, caplog):
    js, root = _hico_case(tmp_path, CASES["inverted_box"][0])
    with skip_bad_records(), caplog.at_level(logging.WARNING):
        dicts = _load("t_skip", js, root, registered)
    assert len(dicts) == 1 and dicts[0]["image_id"] == 1
    assert any("Skipping bad record" in r.message and "x2 < x1" in r.message for r in caplog.records)


def test_mapper_bad_image_raise_or_skip(hico_files, caplog):
    js, root = hico_files
    d = {
        "file_name": os.path.join(root, "missing.jpg"),
        "image_id": 3,
        "height": 48,
        "width": 64,
        "annotations": [],
        "relations": [{"subject": 0, "object": 0, "predicate": 0}],
        "dataset_name": "hico_det_train",
    }
    with pytest.raises(RelationDataError, match=r"missing.jpg: image 3: field 'file_name'"):
        RelationDatasetMapper(is_train=True)(copy.deepcopy(d))
    with caplog.at_level(logging.WARNING):
        assert RelationDatasetMapper(is_train=True, skip_bad_records=True)(copy.deepcopy(d)) is None
    d2 = dict(d, file_name=os.path.join(root, "HICO_train2015_00000001.jpg"), height=50)
    with pytest.raises(RelationDataError, match="height/width"):
        RelationDatasetMapper(is_train=False)(d2)


def test_validate_reports_every_problem_with_counts(tmp_path):
    entries = hico_entries() + copy.deepcopy(hico_entries())
    entries[0]["annotations"][0]["bbox"] = [30, 2, 1, 40]
    entries[2]["annotations"][0]["bbox"] = [30, 2, 1, 40]
    entries[3]["hoi_annotation"][0]["object_id"] = 9
    entries[1]["file_name"] = "nope.jpg"
    root = tmp_path / "imgs"
    for i, e in enumerate(hico_entries()):
        write_image(str(root / e["file_name"]), seed=i)
    js = write_json(tmp_path / "v.json", entries)
    problems, n_ok = validate_file(js, "hico", str(root))
    kinds = sorted(p.kind for p in problems)
    assert kinds == ["inverted_box", "inverted_box", "missing_image", "relation_index_out_of_range"]
    assert n_ok == 0
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run(
        [sys.executable, "-m", "rlipv2.data.validate", js, "--format", "hico", "--image-root", str(root)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    assert "4 problem(s)" in r.stdout and "inverted_box: 2" in r.stdout and "missing_image: 1" in r.stdout
    good = write_json(tmp_path / "good.json", hico_entries())
    r = subprocess.run(
        [sys.executable, "-m", "rlipv2.data.validate", good, "--format", "hico", "--image-root", str(root), "--decode"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 0 and "no problems" in r.stdout, r.stdout + r.stderr


def test_size_mismatch_and_degenerate_image_detected(tmp_path):
    e = hico_entries()[:1]
    e[0]["height"], e[0]["width"] = 100, 100
    write_image(str(tmp_path / e[0]["file_name"]))
    js = write_json(tmp_path / "s.json", e)
    problems, _ = validate_file(js, "hico", str(tmp_path))
    assert [p.kind for p in problems] == ["size_mismatch"] and "100x100" in problems[0].message


def test_official_quirks_tolerated_where_the_official_loader_does(tmp_path, registered, caplog):
    # HICO-DET training: an image whose relation indexes a missing box is dropped (official behaviour)
    js, root = _hico_case(tmp_path, CASES["relation_index_out_of_range"][0])
    with caplog.at_level(logging.WARNING):
        dicts = _load("t_tol", js, root, registered, tolerate=("relation_index_out_of_range",))
    assert [d["image_id"] for d in dicts] == [0]
    assert any("relation_index_out_of_range: 1" in r.message for r in caplog.records)
    # ... but validation still reports it
    problems, _ = validate_file(js, "hico", root)
    assert [p.kind for p in problems] == ["relation_index_out_of_range"]
    # VG: boxes overshooting the image are clamped (official behaviour) when tolerated
    e = vg_entries()
    e[0]["objects"][1]["w"] = 500
    for i in (7, 8):
        write_image(str(tmp_path / f"{i}.jpg"))
    vjs = write_json(tmp_path / "vg.json", e)
    d7 = _load("t_tol_vg", vjs, str(tmp_path), registered, fmt="vg", tolerate=("box_outside_image",))[0]
    assert d7["annotations"][1]["bbox"] == [25.0, 5.0, 64.0, 25.0]
    with pytest.raises(RelationDataError, match="outside"):
        _load("t_tol_vg2", vjs, str(tmp_path), registered, fmt="vg")
