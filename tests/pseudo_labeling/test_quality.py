"""Precision / recall of pseudo-labels against known true relations (rlipv2.pseudo_labeling.quality)."""
import json
import math

import pytest

from rlipv2.pseudo_labeling.quality import main, score_pseudo_labels

TEXTS = {"ride": ["riding", "on"], "sit on": ["sitting on", "on"], "hold": ["holding"]}


def _obj(oid, x, name="person"):
    return {"object_id": oid, "x": float(x), "y": 0.0, "w": 10.0, "h": 10.0, "names": name}


def _rel(rid, s, o, p, conf=None):
    r = {"relationship_id": rid, "subject_id": s, "object_id": o, "predicate": p}
    if conf is not None:
        r["confidence"] = conf
    return r


TRUTH = [
    {"image_id": 1, "objects": [_obj(10, 0), _obj(11, 20, "horse"), _obj(12, 40, "cup")],
     "relationships": [_rel(1, 10, 11, "ride"), _rel(2, 10, 12, "hold"), _rel(3, 10, 12, "no interaction")]},
    {"image_id": 2, "objects": [_obj(20, 0), _obj(21, 30, "chair")],
     "relationships": [_rel(4, 20, 21, "sit on")]},
]
# pseudo-labels: ids renumbered, boxes the same
PSEUDO = [
    {"image_id": 1, "objects": [_obj(100, 0), _obj(101, 20, "horse"), _obj(102, 40, "cup")],
     "relationships": [
         _rel(1, 100, 101, "riding", 0.9),  # correct
         _rel(2, 100, 101, "on", 0.6),  # correct again (same true relation: counted once in recall)
         _rel(3, 100, 102, "riding", 0.5),  # wrong text for the pair
         _rel(4, 101, 100, "riding", 0.8),  # wrong direction
         _rel(5, 100, 102, "grabbing", 0.3),  # a text the table does not know
     ]},
    {"image_id": 2, "objects": [_obj(200, 0), _obj(201, 30, "chair")],
     "relationships": [_rel(6, 200, 201, "on", 0.1)]},  # correct ("on" can say "sit on"), low confidence
]


def test_precision_recall_at_thresholds():
    res = score_pseudo_labels(PSEUDO, TRUTH, TEXTS, thresholds=(0.05, 0.55, 0.95), at_threshold=0.2)
    assert res["num_true_relations"] == 3  # "no interaction" is not counted
    assert res["unknown_texts"] == {"grabbing": 1}
    low, mid, high = res["curve"]
    assert (low["pseudo_relations"], low["correct"]) == (6, 3)
    assert low["precision"] == pytest.approx(3 / 6) and low["recall"] == pytest.approx(2 / 3)
    assert (mid["pseudo_relations"], mid["correct"]) == (3, 2)  # 0.9, 0.6, 0.8
    assert mid["recall"] == pytest.approx(1 / 3)
    assert high["pseudo_relations"] == 0 and math.isnan(high["precision"]) and high["recall"] == 0
    at = res["at_threshold"]
    assert (at["pseudo_relations"], at["correct"]) == (5, 2)


def test_only_the_labelled_images_are_scored():
    res = score_pseudo_labels(PSEUDO[:1], TRUTH, TEXTS, thresholds=(0.05,))
    assert res["num_true_relations"] == 2 and res["num_images"] == 1 and res["num_truth_images_not_labelled"] == 1
    assert res["curve"][0]["recall"] == pytest.approx(1 / 2)
    stray = [dict(PSEUDO[0], image_id=99)]
    with pytest.raises(ValueError, match="no true relations.*99"):
        score_pseudo_labels(stray, TRUTH, TEXTS)


def test_cli_writes_json_and_curve(tmp_path, capsys):
    files = {}
    for name, obj in (("p", PSEUDO), ("t", TRUTH), ("m", TEXTS)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(obj))
    out = tmp_path / "out"
    assert main(["--pseudo-labels", str(files["p"]), "--truth", str(files["t"]), "--predicate-texts",
                 str(files["m"]), "--output-dir", str(out)]) == 0
    assert "precision" in capsys.readouterr().out
    res = json.loads((out / "pseudo_label_quality.json").read_text())  # standard JSON: NaN written as null
    assert res["curve"][-1]["precision"] is None and res["at_threshold"]["threshold"] == 0.2
    assert (out / "pseudo_label_quality.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input_names_file_and_object(tmp_path, capsys):
    bad = [{"image_id": 1, "objects": [{"object_id": 5, "x": "left", "y": 0, "w": 1, "h": 1}], "relationships": []}]
    p = tmp_path / "p.json"
    p.write_text(json.dumps(bad))
    t = tmp_path / "t.json"
    t.write_text(json.dumps(TRUTH))
    m = tmp_path / "m.json"
    m.write_text(json.dumps(TEXTS))
    assert main(["--pseudo-labels", str(p), "--truth", str(t), "--predicate-texts", str(m)]) == 2
    err = capsys.readouterr().err
    assert "pseudo-labels" in err and "object 5" in err
    assert main(["--pseudo-labels", str(tmp_path / "missing.json"), "--truth", str(t), "--predicate-texts",
                 str(m)]) == 2
    assert "--pseudo-labels" in capsys.readouterr().err
