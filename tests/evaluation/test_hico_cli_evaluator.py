"""HICO-DET CLI round trips (npz vs triplet JSON), bad inputs, and the Detectron2 HICOEvaluator."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlipv2.evaluation import hico
from rlipv2.evaluation.hico_io import METADATA_DIR, NpzReader, hico_coco80_ids, write_npz_atomic

COCO = hico_coco80_ids()
ROOT = Path(__file__).resolve().parents[2]


def _fixture(tmp_path, n_img=6, q=4, seed=0):
    """Community-format GT / train JSON and raw npz predictions over the real 117 x 80 correct_mat."""
    rng = np.random.default_rng(seed)
    cm = np.load(METADATA_DIR / "corre_hico.npy")
    pairs = np.stack(np.nonzero(cm), 1)  # (600, 2) verb, object
    gt, preds = [], {}
    for i in range(n_img):
        anns, hois = [], []
        for _ in range(int(rng.integers(1, 3))):
            v, o = pairs[rng.integers(len(pairs))]
            xy = rng.integers(0, 100, 2)
            anns.append({"bbox": [int(xy[0]), int(xy[1]), int(xy[0]) + 30, int(xy[1]) + 40], "category_id": 1})
            anns.append({"bbox": [int(xy[0]) + 20, int(xy[1]), int(xy[0]) + 50, int(xy[1]) + 25],
                         "category_id": COCO[o]})
            hois.append({"subject_id": len(anns) - 2, "object_id": len(anns) - 1, "category_id": int(v) + 1})
        name = f"HICO_test2015_{i:08d}.jpg"
        gt.append({"file_name": name, "annotations": anns, "hoi_annotation": hois})
        boxes = np.zeros((2 * q, 4), np.float32)
        labels = np.zeros(2 * q, np.int64)
        labels[:q] = 1
        for j in range(q):
            h = hois[j % len(hois)]
            boxes[j] = np.array(anns[h["subject_id"]]["bbox"]) + rng.integers(-9, 10, 4)
            boxes[q + j] = np.array(anns[h["object_id"]]["bbox"]) + rng.integers(-9, 10, 4)
            labels[q + j] = anns[h["object_id"]]["category_id"] if j % 3 else COCO[int(rng.integers(80))]
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
        vs = rng.random((q, 117)).astype(np.float32) * 0.2
        for j in range(q):
            vs[j, hois[j % len(hois)]["category_id"] - 1] = 0.3 + 0.7 * rng.random()
        preds[name] = (boxes, labels, vs)
    train = [{"file_name": "t.jpg", "annotations": gt[0]["annotations"],
              "hoi_annotation": gt[0]["hoi_annotation"] * 12}] + gt[1:]
    paths = {k: tmp_path / f"{k}" for k in ("test.json", "train.json", "preds.npz", "corre.npy", "preds.json")}
    paths["test.json"].write_text(json.dumps(gt))
    paths["train.json"].write_text(json.dumps(train))
    np.save(paths["corre.npy"], cm)
    _write_npz(paths["preds.npz"], preds, q)
    return paths, gt, preds, cm


def _write_npz(path, preds, q):
    def arrays():
        yield "file_names", np.array(list(preds))
        for i, (b, lab, vs) in enumerate(preds.values()):
            yield f"boxes_{i}", b
            yield f"labels_{i}", lab
            yield f"verb_scores_{i}", vs
            yield f"sub_ids_{i}", np.arange(q)
            yield f"obj_ids_{i}", np.arange(q, 2 * q)

    write_npz_atomic(path, arrays())


def _args(paths, pred, *extra):
    return ["--gt", str(paths["test.json"]), "--pred", str(pred), "--rare-from", str(paths["train.json"]),
            "--correct-mat", str(paths["corre.npy"]), *extra]


def _triplet_json(preds, cm, top_k):
    """The top-k (verb_score * correct_mat) triplets of each image, written as a triplet JSON."""
    out = []
    lut = {c: i for i, c in enumerate(COCO)}
    for name, (b, lab, vs) in preds.items():
        q = vs.shape[0]
        masked = vs * cm[:, [lut[int(x)] for x in lab[q:]]].T
        flat = masked.reshape(-1)
        order = np.argsort(-flat, kind="stable")[:top_k]
        out.append({"file_name": name,
                    "predictions": [{"bbox": bb.tolist(), "category_id": int(c)} for bb, c in zip(b, lab)],
                    "hoi_prediction": [{"subject_id": int(f // 117), "object_id": int(q + f // 117),
                                        "category_id": int(f % 117) + 1, "score": float(flat[f])} for f in order]})
    return out


@pytest.mark.parametrize("protocol", ["qpic", "matlab"])
def test_cli_npz_and_triplet_json_agree(tmp_path, protocol):
    paths, gt, preds, cm = _fixture(tmp_path)
    paths["preds.json"].write_text(json.dumps(_triplet_json(preds, cm, 100)))
    a = hico.main(_args(paths, paths["preds.npz"], "--protocol", protocol, "--json-out", str(tmp_path / "a.json")))
    b = hico.main(_args(paths, paths["preds.json"], "--protocol", protocol))
    assert a["hoi"] == b["hoi"]
    assert 0 < a["hoi"]["mAP"] < 1 and a["protocol"] == protocol
    written = json.loads((tmp_path / "a.json").read_text())
    assert written["hoi"]["mAP"] == a["hoi"]["mAP"]


@pytest.mark.slow  # a fresh interpreter importing the whole package
def test_cli_module_entry_point_and_reports(tmp_path):
    paths, *_ = _fixture(tmp_path)
    out = tmp_path / "out.json"
    p = subprocess.run([sys.executable, "-m", "rlipv2.evaluation.hico",
                        *_args(paths, paths["preds.npz"], "--nms", "--json-out", str(out), "--output-dir",
                               str(tmp_path / "rep"))], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "qpic protocol" in p.stdout
    res = json.loads(out.read_text())
    assert res["nms"]["enabled"] and set(res["hoi"]) >= {"mAP", "mAP_rare", "mAP_non_rare", "mean_max_recall"}
    csv = (tmp_path / "rep" / "hico_per_class_ap.csv").read_text().splitlines()
    assert csv[0].startswith("class,") and len(csv) == 1 + res["hoi"]["num_classes"]
    assert (tmp_path / "rep" / "hico_per_class_ap.png").stat().st_size > 1000


def test_cli_zero_shot_known_object_and_reports(tmp_path):
    paths, *_ = _fixture(tmp_path)
    z = hico.main(_args(paths, paths["preds.npz"], "--zero-shot", "UC-RF", "--nms", "--output-dir",
                        str(tmp_path / "rep")))
    assert {"mAP_unseen", "mAP_seen"} <= set(z["hoi"])
    csv = (tmp_path / "rep" / "hico_per_class_ap.csv").read_text().splitlines()
    assert csv[0].startswith("class,") and len(csv) == 1 + z["hoi"]["num_classes"]
    assert (tmp_path / "rep" / "hico_per_class_ap.png").stat().st_size > 1000
    k = hico.main(_args(paths, paths["preds.npz"], "--protocol", "matlab", "--known-object"))
    d = hico.main(_args(paths, paths["preds.npz"], "--protocol", "matlab"))
    assert k["setting"] == "known_object" and k["hoi"]["mAP"] >= d["hoi"]["mAP"]


# ------------------------------------------------------------------------------------------ bad input


def _rewrite(tmp_path, preds, q, mutate):
    preds = {k: tuple(np.array(x) for x in v) for k, v in preds.items()}
    mutate(preds)
    path = tmp_path / "bad.npz"
    _write_npz(path, preds, q)
    return path


@pytest.mark.parametrize("mutate,error,match", [
    (lambda p: p.__setitem__("unknown.jpg", p.popitem()[1]), KeyError, "unknown image 'unknown.jpg'"),
    (lambda p: p[next(iter(p))][2].__setitem__((0, 0), np.nan), ValueError, "NaN or inf"),
    (lambda p: p[next(iter(p))][2].__setitem__((1, 3), np.inf), ValueError, "NaN or inf"),
    (lambda p: p[next(iter(p))][0].__setitem__((0, 2), -5.0), ValueError, "x2 < x1"),
    (lambda p: p[next(iter(p))][1].__setitem__(5, 12), ValueError, "unknown object category_id 12"),
])
def test_bad_npz_inputs_raise_clear_errors(tmp_path, mutate, error, match):
    paths, gt, preds, cm = _fixture(tmp_path)
    bad = _rewrite(tmp_path, preds, 4, mutate)
    with pytest.raises(error, match=match):
        hico.main(_args(paths, bad))


def test_bad_shapes_and_pickles(tmp_path):
    paths, gt, preds, cm = _fixture(tmp_path)
    name = next(iter(preds))
    b, lab, vs = preds[name]
    preds[name] = (b, lab, vs[:, :100])
    with pytest.raises(ValueError, match=r"verb_scores must have shape \(Q, 117\)"):
        hico.main(_args(paths, _rewrite(tmp_path, preds, 4, lambda p: None)))
    obj = tmp_path / "obj.npz"
    np.savez(obj, file_names=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickles are not loaded"):
        NpzReader(obj)["file_names"]
    bad_gt = json.loads(paths["test.json"].read_text())
    bad_gt[2]["hoi_annotation"][0]["category_id"] = 500
    paths["test.json"].write_text(json.dumps(bad_gt))
    with pytest.raises(ValueError, match=r"test.json: image 'HICO_test2015_00000002.jpg': field "
                                         r"'hoi_annotation\[0\].category_id': unknown predicate id 500"):
        hico.main(_args(paths, paths["preds.npz"]))


# ------------------------------------------------------------------------------------------ DatasetEvaluator


@pytest.fixture()
def hoi_dataset():
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.structures import BoxMode

    rng = np.random.default_rng(3)
    n_obj, n_verb = 4, 3
    cm = np.ones((n_verb, n_obj))
    cm[2, 3] = 0
    dicts = []
    for i in range(10):
        anns, rels = [], []
        for _ in range(int(rng.integers(1, 3))):
            xy = rng.integers(0, 80, 2).astype(float)
            o = int(rng.integers(1, n_obj))
            anns.append({"bbox": [xy[0], xy[1], xy[0] + 20, xy[1] + 30], "bbox_mode": BoxMode.XYXY_ABS,
                         "category_id": int(rng.integers(0, 2))})
            anns.append({"bbox": [xy[0] + 10, xy[1], 30, 20], "bbox_mode": BoxMode.XYWH_ABS, "category_id": o})
            rels.append({"subject": len(anns) - 2, "object": len(anns) - 1, "predicate": int(rng.integers(0, 2)),
                         "confidence": 1.0})
        dicts.append({"file_name": f"img_{i}.jpg", "image_id": i, "height": 120, "width": 120,
                      "annotations": anns, "relations": rels})
    name = "_test_hico_eval_synthetic"
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=["person", "cup", "ball", "dog"],
                                  predicate_classes=["hold", "kick", "walk"], correct_mat=cm,
                                  rare_triplets=[(0, 1), (1, 2)], nonrare_triplets=[(0, 2), (1, 1), (0, 3), (1, 3)],
                                  zero_shot_unseen_triplets=[(1, 1)], subject_class=0, evaluator_type="hico")
    yield name, dicts, cm
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _fake_outputs(dicts, q=5, seed=0):
    import torch
    from detectron2.structures import Boxes, BoxMode, Instances

    rng = np.random.default_rng(seed)
    inputs, outputs = [], []
    for d in dicts:
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
        pb = np.zeros((2 * q, 4), np.float32)
        pc = np.zeros(2 * q, np.int64)
        rs = rng.random((q, 3)).astype(np.float32) * 0.3
        for j in range(q):
            r = d["relations"][j % len(d["relations"])]
            pb[j] = np.array(boxes[r["subject"]]) + rng.normal(0, 2, 4)
            pb[q + j] = np.array(boxes[r["object"]]) + rng.normal(0, 2, 4)
            pc[j] = d["annotations"][r["subject"]]["category_id"]
            pc[q + j] = d["annotations"][r["object"]]["category_id"]
            rs[j, r["predicate"]] = 0.4 + 0.6 * rng.random()
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2])
        inst = Instances((120, 120), pred_boxes=Boxes(torch.from_numpy(pb)), pred_classes=torch.from_numpy(pc),
                         scores=torch.ones(2 * q))
        inputs.append({"file_name": d["file_name"], "image_id": d["image_id"]})
        outputs.append({"instances": inst, "pairs": {"subject": torch.arange(q), "object": torch.arange(q, 2 * q),
                                                      "relation_scores": torch.from_numpy(rs)}})
    return inputs, outputs


@pytest.mark.parametrize("protocol", ["qpic", "matlab"])
def test_dataset_evaluator_one_vs_two_processes(hoi_dataset, tmp_path, protocol):
    from rlipv2.evaluation import HICOEvaluator

    name, dicts, cm = hoi_dataset
    inputs, outputs = _fake_outputs(dicts)
    single = HICOEvaluator(name, str(tmp_path / "single"), protocol=protocol, distributed=False)
    single.reset()
    for i in range(0, len(inputs), 3):
        single.process(inputs[i : i + 3], outputs[i : i + 3])
    res = single.evaluate()
    assert set(res) == {"hoi"} and all(isinstance(v, float) for v in res["hoi"].values())
    assert 0 < res["hoi"]["mAP"] <= 1 and not np.isnan(res["hoi"]["mAP_rare"])
    # two "ranks": interleaved halves, the sampler's padding duplicate, gathered in rank order
    ranks = [HICOEvaluator(name, None, protocol=protocol, distributed=False) for _ in range(2)]
    for i in range(len(inputs)):
        ranks[i % 2].process(inputs[i : i + 1], outputs[i : i + 1])
    ranks[1].process(inputs[:1], outputs[:1])
    merged = HICOEvaluator(name, None, protocol=protocol, distributed=False)
    merged._predictions = ranks[0]._predictions + ranks[1]._predictions
    assert merged.evaluate() == res
    # the compact per-image state: top-k arrays only
    p = single._predictions[0]
    assert set(p) >= {"sub_boxes", "obj_boxes", "verbs", "scores"} and len(p["scores"]) <= 100
    # outputs: raw npz re-scorable by the CLI, results JSON, per-class CSV / PNG
    out = tmp_path / "single"
    assert {f.name for f in out.iterdir()} >= {"hico_predictions.npz", "hico_results.json", "hico_per_class_ap.csv",
                                               "hico_per_class_ap.png"}
    gt_json = [{"file_name": d["file_name"],
                "annotations": [{"bbox": [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                          a["bbox"][1] + a["bbox"][3]] if a["bbox_mode"] == 1 else a["bbox"],
                                 "category_id": a["category_id"]} for a in d["annotations"]],
                "hoi_annotation": [{"subject_id": r["subject"], "object_id": r["object"],
                                    "category_id": r["predicate"]} for r in d["relations"]]} for d in dicts]
    (tmp_path / "gt.json").write_text(json.dumps(gt_json))
    np.save(tmp_path / "cm.npy", cm)
    cli = hico.main(["--gt", str(tmp_path / "gt.json"), "--pred", str(out / "hico_predictions.npz"),
                     "--correct-mat", str(tmp_path / "cm.npy"), "--protocol", protocol])
    assert cli["hoi"]["mAP"] == res["hoi"]["mAP"]
    assert cli["hoi"]["mean_max_recall"] == res["hoi"]["mean_max_recall"]


def test_dataset_evaluator_zero_shot_and_bad_outputs(hoi_dataset):
    import torch

    from rlipv2.evaluation import HICOEvaluator

    name, dicts, _ = hoi_dataset
    inputs, outputs = _fake_outputs(dicts)
    ev = HICOEvaluator(name, None, zero_shot=True, distributed=False)
    ev.process(inputs, outputs)
    res = ev.evaluate()["hoi"]
    assert {"mAP_unseen", "mAP_seen"} <= set(res)
    outputs[0]["pairs"]["relation_scores"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        ev.process(inputs[:1], outputs[:1])
    outputs[1]["pairs"]["relation_scores"] = torch.zeros(5, 7)
    with pytest.raises(ValueError, match=r"relation_scores must be \(Q, 3\)"):
        ev.process(inputs[1:2], outputs[1:2])
    ev.reset()
    ev.process([{"file_name": "not_in_dataset.jpg"}], outputs[2:3])
    with pytest.raises(KeyError, match="not in the dataset"):
        ev.evaluate()
