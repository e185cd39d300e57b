"""V-COCO (vsrl_eval protocol): hand-computed cases, cross-check against the slow reference, CLI, evaluator."""
import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from rlipv2.evaluation import vcoco
from rlipv2.evaluation.hico_io import METADATA_DIR, write_npz_atomic


def _sibling(name):
    """A module of tests/evaluation/ that is not a test (the references)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rv = _sibling("reference_vcoco")


def _write(tmp_path, vc, coco, ids, dets=None, fmt="json"):
    paths = {"vcoco": tmp_path / "vcoco_test.json", "coco": tmp_path / "coco.json", "ids": tmp_path / "test.ids"}
    paths["vcoco"].write_text(json.dumps(vc))
    paths["coco"].write_text(json.dumps(coco))
    np.savetxt(paths["ids"], ids, fmt="%d")
    if dets is not None:
        paths["det"] = tmp_path / f"dets.{fmt}"
        if fmt == "json":
            paths["det"].write_text(json.dumps(dets))
        else:
            with open(paths["det"], "wb") as f:
                pickle.dump(dets, f)
    return paths


def _tiny(role_object_of_p1=11):
    """Image 1: persons 1 (annotated: hold, object 11), 2 (annotated: nothing), 3 (not in V-COCO: ignored)."""
    coco = {"images": [{"id": 1, "width": 200, "height": 200}],
            "categories": [{"id": 1, "name": "person"}, {"id": 44, "name": "cup"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 100], "area": 5000, "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 1, "bbox": [100, 0, 50, 100], "area": 5000, "iscrowd": 0},
                {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 120, 50, 60], "area": 3000, "iscrowd": 0},
                {"id": 11, "image_id": 1, "category_id": 44, "bbox": [40, 40, 20, 20], "area": 400, "iscrowd": 0}]}
    vc = [{"action_name": "hold", "role_name": ["agent", "obj"], "ann_id": [1, 2], "label": [1, 0],
           "image_id": [1, 1], "role_object_id": [1, 2, role_object_of_p1, 0]},
          {"action_name": "stand", "role_name": ["agent"], "ann_id": [1, 2], "label": [0, 0], "image_id": [1, 1],
           "role_object_id": [1, 2]}]
    return vc, coco, [1]


def det(pbox, hold, obj_box, stand=0.1):
    return {"image_id": 1, "person_box": pbox, "hold_agent": hold, "hold_obj": [*obj_box, hold], "stand_agent": stand}


P1, P3, CUP = [0, 0, 49, 99], [0, 120, 49, 179], [40, 40, 59, 59]


def test_duplicates_ignored_persons_and_actions_without_positives(tmp_path):
    vc, coco, ids = _tiny()
    dets = [det(P1, 0.9, CUP), det(P1, 0.8, CUP), det(P3, 0.95, CUP)]
    p = _write(tmp_path, vc, coco, ids, dets)
    gt = vcoco.load_vcoco_gt(p["vcoco"], p["coco"], p["ids"])
    res = vcoco.evaluate_vcoco(gt, vcoco.load_detections(p["det"], gt))
    # hold: the detection on the ignored person is skipped; TP then duplicate FP: rec [1, 1], prec [1, .5]
    assert res["per_class"]["agent"]["hold"] == 1.0
    assert np.isnan(res["per_class"]["agent"]["stand"])  # no positive: NaN (vsrl_eval crashes)
    assert res["vcoco"]["agent_mAP"] == pytest.approx(0.5)  # nansum / 2 actions
    assert res["vcoco"]["role_mAP_s1"] == 1.0 and res["vcoco"]["role_mAP_s2"] == 1.0
    assert any("stand has no positive" in n for n in res["notes"])


def test_scenario_1_vs_2_for_a_missing_role(tmp_path):
    vc, coco, ids = _tiny(role_object_of_p1=0)  # person 1 holds something not annotated
    p = _write(tmp_path, vc, coco, ids, [det(P1, 0.9, CUP), det(P1, 0.7, [0, 0, 0, 0])])
    gt = vcoco.load_vcoco_gt(p["vcoco"], p["coco"], p["ids"])
    res = vcoco.evaluate_vcoco(gt, vcoco.load_detections(p["det"], gt))["per_class"]
    # scenario 1: a predicted box is wrong when the GT role is missing, an all-zero box is right
    # -> FP (0.9), TP (0.7): rec [0, 1], prec [0, .5] -> AP 0.5; scenario 2: the first is already right -> 1.0
    assert res["role_s1"]["hold-obj"] == pytest.approx(0.5)
    assert res["role_s2"]["hold-obj"] == 1.0


def test_person_iou_threshold_and_unknown_image(tmp_path):
    vc, coco, ids = _tiny()
    half = [0, 0, 49, 49]  # IoU with person 1 = 2500 / 5000 = 0.5 exactly -> still a match
    p = _write(tmp_path, vc, coco, ids, [det(half, 0.9, CUP)])
    gt = vcoco.load_vcoco_gt(p["vcoco"], p["coco"], p["ids"])
    assert vcoco.evaluate_vcoco(gt, vcoco.load_detections(p["det"], gt))["per_class"]["agent"]["hold"] == 1.0
    bad = [det(P1, 0.9, CUP)]
    bad[0]["image_id"] = 77
    p = _write(tmp_path, vc, coco, ids, bad)
    with pytest.raises(ValueError, match="image 77, which is not in the V-COCO split"):
        vcoco.evaluate_vcoco(gt, vcoco.load_detections(p["det"], gt))
    bad = [det([10, 10, 5, 5], 0.9, CUP)]
    p = _write(tmp_path, vc, coco, ids, bad)
    with pytest.raises(ValueError, match="x2 < x1"):
        vcoco.evaluate_vcoco(gt, vcoco.load_detections(p["det"], gt))


def test_pickles_need_allow_pickle(tmp_path):
    vc, coco, ids = _tiny()
    p = _write(tmp_path, vc, coco, ids, [det(P1, 0.9, CUP)], fmt="pkl")
    args = ["--vcoco-test", str(p["vcoco"]), "--coco", str(p["coco"]), "--ids", str(p["ids"]), "--det", str(p["det"])]
    with pytest.raises(ValueError, match="--allow-pickle"):
        vcoco.main(args)
    assert vcoco.main(args + ["--allow-pickle"])["vcoco"]["agent_mAP"] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(3))
def test_random_cases_match_the_reference_and_npz_round_trip(tmp_path, seed):
    vc, coco, ids, dets = rv.make_synthetic_vcoco(12, 6, seed=seed)
    p = _write(tmp_path, vc, coco, ids, dets)
    out = vcoco.main(["--vcoco-test", str(p["vcoco"]), "--coco", str(p["coco"]), "--ids", str(p["ids"]), "--det",
                      str(p["det"])])
    slow = rv.reference_vcoco(vc, coco, ids, json.loads(p["det"].read_text()))
    assert out["vcoco"] == slow
    gt = vcoco.load_vcoco_gt(p["vcoco"], p["coco"], p["ids"])
    d = vcoco.load_detections(p["det"], gt)
    write_npz_atomic(tmp_path / "d.npz", [("image_ids", d.image_ids), ("person_boxes", d.person_boxes),
                                          ("agent_scores", d.agent_scores), ("role_boxes", d.role_boxes)])
    again = vcoco.main(["--vcoco-test", str(p["vcoco"]), "--coco", str(p["coco"]), "--ids", str(p["ids"]), "--det",
                        str(tmp_path / "d.npz")])
    assert again["vcoco"] == out["vcoco"]


def test_vcoco_evaluator_on_fake_outputs(tmp_path):
    import torch
    from detectron2.data import MetadataCatalog
    from detectron2.structures import Boxes, Instances

    from rlipv2.evaluation import VCOCOEvaluator

    vc, coco, ids, _ = rv.make_synthetic_vcoco(6, 1, seed=5)
    p = _write(tmp_path, vc, coco, ids)
    name = "_test_vcoco_eval"
    MetadataCatalog.get(name).set(thing_classes=[f"o{i}" for i in range(80)] + ["missing objects"])
    try:
        ev = VCOCOEvaluator(name, str(tmp_path / "out"), vcoco_test_json=p["vcoco"], coco_json=p["coco"],
                            ids_file=p["ids"], distributed=False)
        rng = np.random.default_rng(0)
        anns = {}
        for a in coco["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        for iid in ids:
            q = 4
            boxes = []
            for a in anns[iid][:2 * q]:
                x, y, w, h = a["bbox"]
                boxes.append([x, y, x + w, y + h])
            boxes = np.array((boxes * 8)[: 2 * q], np.float32)
            labels = torch.tensor([0] * q + [80, 3, 5, 80])
            inst = Instances((480, 640), pred_boxes=Boxes(torch.from_numpy(boxes)), pred_classes=labels,
                             scores=torch.ones(2 * q))
            out = {"instances": inst, "pairs": {"subject": torch.arange(q), "object": torch.arange(q, 2 * q),
                                                "relation_scores": torch.from_numpy(rng.random((q, 29)).astype(
                                                    np.float32))}}
            ev.process([{"image_id": iid}], [out])
        res = ev.evaluate()
        assert set(res["vcoco"]) == {"agent_mAP", "role_mAP_s1", "role_mAP_s2", "role_mAP_s1_24", "role_mAP_s2_24"}
        with open(tmp_path / "out" / "vcoco_detections.pkl", "rb") as f:
            written = pickle.load(f)
        assert len(written) == 4 * len(ids) and "hold_obj" in written[0] and len(written[0]["hold_obj"]) == 5
        cli = vcoco.main(["--vcoco-test", str(p["vcoco"]), "--coco", str(p["coco"]), "--ids", str(p["ids"]),
                          "--det", str(tmp_path / "out" / "vcoco_detections.pkl"), "--allow-pickle"])
        assert cli["vcoco"] == res["vcoco"]
        assert (tmp_path / "out" / "vcoco_per_class_ap.csv").read_text().count("\n") == 1 + 26 + 25
        assert (tmp_path / "out" / "vcoco_per_class_ap.png").stat().st_size > 1000
    finally:
        MetadataCatalog.remove(name)


def test_tied_scores_are_ordered_as_vsrl_eval_orders_them(tmp_path):
    """Many equal scores, across and within images, in arrays longer than NumPy's insertion-sort cut-off: the
    order of ties is NumPy's unstable argsort in vsrl_eval, which no fixed tie rule reproduces."""
    ov = _sibling("official_vsrl_eval")
    meta = json.loads((METADATA_DIR / "vcoco_actions.json").read_text())["actions"]
    vc, coco, ids, arrays = rv.make_synthetic_vcoco(60, 40, seed=7, as_numpy="arrays")
    for key, col in (("agent_scores", np.s_[:]), ("role_boxes", np.s_[..., 4])):
        s = arrays[key][col]
        arrays[key][col] = np.where(np.isnan(s), s, np.round(s * 4) / 4)  # five distinct scores
    dets = rv.arrays_to_dicts(arrays, meta, images=list(ids))
    official = ov.VsrlEvalLike(vc, coco, ids).evaluate(dets)
    p = _write(tmp_path, vc, coco, ids)
    gt = vcoco.load_vcoco_gt(p["vcoco"], p["coco"], p["ids"])
    ours = vcoco.evaluate_vcoco(gt, vcoco.detections_from_dicts(dets, gt))["vcoco"]
    assert {k: ours[k] for k in official} == official
