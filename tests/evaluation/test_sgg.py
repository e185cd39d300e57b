"""Open Images (rlipv2 / gcl protocols) and Visual Genome SGDet metrics."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from rlipv2.evaluation import oi
from rlipv2.evaluation.hico_core import HOIGroundTruth
from rlipv2.evaluation.hico_io import write_npz_atomic
from rlipv2.evaluation.vg import VGRecallAccumulator

_spec = importlib.util.spec_from_file_location("reference_oi", Path(__file__).with_name("reference_oi.py"))
ro = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ro)


def _random_oi(seed, n=12, O=4, R=3, Q=6):
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for i in range(n):
        G = int(rng.integers(0, 5))
        xy = rng.integers(0, 40, (G, 2))
        b = np.concatenate([xy, xy + rng.integers(2, 30, (G, 2))], 1).astype(np.float32)
        lab = rng.integers(0, O, G)
        H = int(rng.integers(0, 4)) if G else 0
        rels = np.stack([rng.integers(0, G, H), rng.integers(0, G, H), rng.integers(0, R, H)], 1) if H else \
            np.zeros((0, 3), int)
        gts.append({"file_name": f"im{i}", "boxes": b, "labels": lab, "hois": rels, "rels": rels})
        pb = np.zeros((2 * Q, 4), np.float32)
        pl = rng.integers(0, O, 2 * Q)
        for m in range(2 * Q):
            if G and rng.random() < 0.8:
                g = rng.integers(0, G)
                pb[m] = b[g] + rng.integers(-3, 4, 4)
                pl[m] = lab[g]
            else:
                xy2 = rng.integers(0, 40, 2)
                pb[m] = np.r_[xy2, xy2 + rng.integers(2, 30, 2)]
            pb[m, 2:] = np.maximum(pb[m, 2:], pb[m, :2])
        rs = (rng.permutation(Q * R).reshape(Q, R) / (Q * R) + 0.01).astype(np.float32)
        preds.append({"boxes": pb, "labels": pl, "rel_scores": rs, "sub_ids": np.arange(Q),
                      "obj_ids": np.arange(Q, 2 * Q)})
    raw = [(i, p["boxes"], p["labels"], p["rel_scores"], p["sub_ids"], p["obj_ids"], f"im{i}")
           for i, p in enumerate(preds)]
    return gts, preds, raw


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("nms", [True, False])
def test_oi_rlipv2_matches_reference_including_phrase_quirk(seed, nms):
    gts, preds, raw = _random_oi(seed)
    gt = HOIGroundTruth.from_images(gts)
    for k in (10, 5):
        fast = oi.evaluate_oi_rlipv2(gt, raw, 4, 3, k, nms)
        slow = ro.reference_oi_rlipv2(preds, gts, k, nms)
        for a in ("mAP_rel", "wmAP_rel", "R_rel", "mAP_phr", "wmAP_phr", "R_phr"):
            assert fast[f"{a}@{k}"] == slow[a], (a, k)


def _one_image(pred_sub, pred_obj, score=0.9):
    gt = HOIGroundTruth.from_images([{"file_name": "a", "boxes": [[0, 0, 9, 9], [20, 0, 29, 9]], "labels": [0, 1],
                                      "hois": [[0, 1, 2]]}])
    rs = np.zeros((1, 3), np.float32)
    rs[0, 2] = score
    rs[0, 1] = score / 2
    return gt, [(0, np.array([pred_sub, pred_obj], np.float32), np.array([0, 1]), rs, np.array([0]), np.array([1]),
                 "a")]


def test_oi_gcl_strict_overlap_for_ap_but_not_for_recall():
    gt, raw = _one_image([0, 0, 9, 9], [20, 0, 29, 9])
    r = oi.evaluate_oi_gcl(gt, raw, 3)
    assert r["R@50"] == 1.0 and r["wmAP_rel"] == 1.0 and r["wmAP_phr"] == 1.0
    assert r["score_wtd"] == pytest.approx(1.0)
    gt, raw = _one_image([0, 0, 9, 4], [20, 0, 29, 9])  # subject IoU = 0.5 exactly
    r = oi.evaluate_oi_gcl(gt, raw, 3)
    assert r["R@50"] == 1.0  # recall uses >= 0.5
    assert r["wmAP_rel"] == 0.0  # ap_eval needs an overlap strictly above 0.5
    # rlipv2 protocol: IoU >= 0.5 matches, 11-point AP
    r2 = oi.evaluate_oi_rlipv2(gt, raw, 2, 3, 100, nms=False)
    assert r2["wmAP_rel@100"] == pytest.approx(1.0) and r2["R_rel@100"] == 1.0


def test_oi_cli_both_protocols(tmp_path):
    gts, preds, _ = _random_oi(3)
    data = [{"file_name": g["file_name"],
             "annotations": [{"bbox": b.tolist(), "category_id": int(c)} for b, c in zip(g["boxes"], g["labels"])],
             "rel_annotations": [{"subject_id": int(s), "object_id": int(o), "category_id": int(r)}
                                 for s, o, r in g["rels"]]} for g in gts]
    (tmp_path / "gt.json").write_text(json.dumps(data))
    arrays = [("file_names", np.array([g["file_name"] for g in gts]))]
    for i, p in enumerate(preds):
        arrays += [(f"boxes_{i}", p["boxes"]), (f"labels_{i}", p["labels"]), (f"rel_scores_{i}", p["rel_scores"]),
                   (f"sub_ids_{i}", p["sub_ids"]), (f"obj_ids_{i}", p["obj_ids"])]
    write_npz_atomic(tmp_path / "p.npz", arrays)
    a = oi.main(["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "p.npz"), "--num-rels", "3",
                 "--json-out", str(tmp_path / "o.json")])
    b = oi.main(["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "p.npz"), "--num-rels", "3",
                 "--protocol", "gcl"])
    for r in (a, b):
        o = r["oi"]
        assert o["score_wtd"] == pytest.approx(0.2 * o["R@50"] + 0.4 * o["wmAP_rel"] + 0.4 * o["wmAP_phr"])
    assert json.loads((tmp_path / "o.json").read_text())["protocol"] == "rlipv2"
    arrays[3] = ("rel_scores_0", preds[0]["rel_scores"][:, :2])
    write_npz_atomic(tmp_path / "bad.npz", arrays)
    with pytest.raises(ValueError, match=r"rel_scores must have shape \(Q, 3\)"):
        oi.main(["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "bad.npz"), "--num-rels", "3"])


# ------------------------------------------------------------------------------------------------ VG


def test_vg_graph_constraint_ng_mean_and_zero_shot_recall():
    acc = VGRecallAccumulator(num_predicates=3, zero_shot_triplets=[(0, 1, 2)])
    gt_boxes = [[0, 0, 9, 9], [20, 0, 29, 9], [40, 0, 49, 9]]
    gt_labels = [0, 1, 1]
    gt_rels = [[0, 1, 2], [0, 2, 0]]  # (person, 2, object 1) is zero-shot; (person, 0, object 2)
    boxes = np.array(gt_boxes, float)
    # pair 0 = (0, 1): argmax predicate 2 (right); pair 1 = (0, 2): argmax predicate 1 (wrong), predicate 0 second
    rs = np.array([[0.1, 0.2, 0.9], [0.6, 0.8, 0.0]])
    acc.add_image(gt_boxes, gt_labels, gt_rels, boxes, gt_labels, [0, 0], [1, 2], rs)
    acc.add_image(gt_boxes, gt_labels, [], boxes, gt_labels, [0], [1], rs[:1])  # no GT relation: not averaged
    s = acc.summary()
    assert s["R@20"] == 0.5 and s["R@100"] == 0.5  # graph constraint: one of two
    assert s["ngR@20"] == 1.0  # without it the second predicate of pair 1 is in the top-k
    assert s["mR@20"] == pytest.approx((0.0 + 0.0 + 1.0) / 3)  # predicate 1 absent -> 0
    assert s["ngmR@20"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert s["zR@20"] == 1.0
    # an IoU just below 0.5 misses
    acc2 = VGRecallAccumulator(3)
    far = boxes.copy()
    far[1] = [20, 0, 29, 3.9]  # IoU (4.9 * 10) / 100 < 0.5
    acc2.add_image(gt_boxes, gt_labels, gt_rels[:1], far, gt_labels, [0], [1], rs[:1])
    assert acc2.summary()["R@20"] == 0.0


@pytest.fixture()
def sgg_dataset():
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.structures import BoxMode

    gts, preds, _ = _random_oi(7, n=8)
    dicts = [{"file_name": g["file_name"], "image_id": i, "height": 80, "width": 80,
              "annotations": [{"bbox": b.tolist(), "bbox_mode": BoxMode.XYXY_ABS, "category_id": int(c)}
                              for b, c in zip(g["boxes"], g["labels"])],
              "relations": [{"subject": int(s), "object": int(o), "predicate": int(r), "confidence": 1.0}
                            for s, o, r in g["rels"]]} for i, g in enumerate(gts)]
    name = "_test_sgg_eval"
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=["a", "b", "c", "d"], predicate_classes=["p", "q", "r"])
    yield name, dicts, preds
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _outputs(dicts, preds):
    import torch
    from detectron2.structures import Boxes, Instances

    inputs, outputs = [], []
    for d, p in zip(dicts, preds):
        q = len(p["sub_ids"])
        inst = Instances((80, 80), pred_boxes=Boxes(torch.from_numpy(p["boxes"])),
                         pred_classes=torch.from_numpy(p["labels"]), scores=torch.ones(2 * q))
        inputs.append({"file_name": d["file_name"], "image_id": d["image_id"]})
        outputs.append({"instances": inst, "pairs": {"subject": torch.arange(q), "object": torch.arange(q, 2 * q),
                                                      "relation_scores": torch.from_numpy(p["rel_scores"])}})
    return inputs, outputs


def test_oi_and_vg_dataset_evaluators(sgg_dataset, tmp_path):
    from rlipv2.evaluation import OISGGEvaluator, VGSGGEvaluator

    name, dicts, preds = sgg_dataset
    inputs, outputs = _outputs(dicts, preds)
    ev = OISGGEvaluator(name, str(tmp_path), distributed=False)
    ev.process(inputs, outputs)
    res = ev.evaluate()["oi"]
    gt = HOIGroundTruth.from_images([{"file_name": d["file_name"], "boxes": g["boxes"], "labels": g["labels"],
                                      "hois": g["rels"]} for d, g in zip(dicts, _random_oi(7, n=8)[0])])
    raw = [(i, p["boxes"], p["labels"], p["rel_scores"], p["sub_ids"], p["obj_ids"], "") for i, p in enumerate(preds)]
    direct = oi.evaluate_oi(gt, raw, 4, 3, "rlipv2")["oi"]
    assert res == pytest.approx(direct)
    # split over two "ranks"
    halves = [OISGGEvaluator(name, None, distributed=False) for _ in range(2)]
    halves[0].process(inputs[::2], outputs[::2])
    halves[1].process(inputs[1::2], outputs[1::2])
    merged = OISGGEvaluator(name, None, distributed=False)
    merged._predictions = halves[1]._predictions + halves[0]._predictions
    assert merged.evaluate()["oi"] == res
    vg = VGSGGEvaluator(name, str(tmp_path), distributed=False)
    vg.process(inputs, outputs)
    r = vg.evaluate()["sgg"]
    assert {"R@20", "R@50", "R@100", "ngR@100", "mR@100"} <= set(r) and 0 <= r["R@50"] <= r["R@100"] <= 1
    assert (tmp_path / "vg_per_predicate_recall.csv").exists() and (tmp_path / "oi_predictions.npz").exists()
    assert (tmp_path / "oi_per_class_ap.csv").exists() and (tmp_path / "oi_per_class_ap.png").exists()
