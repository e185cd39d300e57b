"""Training-time and offline HICO-DET scoring agree: the ``hico_predictions.npz`` written by HICOEvaluator,
re-scored by the CLI with no flag but ``--pred``, gives exactly the training-time metrics; the MATLAB
protocol keeps every detection unless --top-k says otherwise; --object-ids and CLI errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("detectron2")

from rlipv2.evaluation import hico  # noqa: E402
from rlipv2.evaluation.hico_io import METADATA_DIR, hico_coco80_ids, read_prediction_meta  # noqa: E402

COCO = hico_coco80_ids()


def _gt_json(path, n_img=30, seed=0):
    rng = np.random.default_rng(seed)
    cm = np.load(METADATA_DIR / "corre_hico.npy")
    pairs = np.stack(np.nonzero(cm), 1)
    gt = []
    for i in range(n_img):
        anns, hois = [], []
        for _ in range(int(rng.integers(1, 4))):
            # three frequent classes (non-rare: >= 10 instances) and a tail of rare ones
            v, o = pairs[rng.integers(3) if rng.random() < 0.7 else rng.integers(3, 60)]
            xy = rng.integers(0, 200, 2)
            anns.append({"bbox": [int(xy[0]), int(xy[1]), int(xy[0]) + 40, int(xy[1]) + 60], "category_id": 1})
            anns.append({"bbox": [int(xy[0]) + 20, int(xy[1]) + 5, int(xy[0]) + 70, int(xy[1]) + 35],
                         "category_id": COCO[o]})
            hois.append({"subject_id": len(anns) - 2, "object_id": len(anns) - 1, "category_id": int(v) + 1})
        gt.append({"file_name": f"HICO_test2015_{i:08d}.jpg", "annotations": anns, "hoi_annotation": hois})
    path.write_text(json.dumps(gt))
    return gt


@pytest.fixture
def hico_dataset(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from PIL import Image

    from rlipv2.data.datasets.hico import register_hico_format

    gt_path = tmp_path / "test_hico.json"
    gt = _gt_json(gt_path)
    (tmp_path / "images").mkdir()
    for rec in gt:
        Image.new("RGB", (320, 280)).save(tmp_path / "images" / rec["file_name"])
    name = "_test_rescore_hico"
    register_hico_format(name, str(gt_path), str(tmp_path / "images"), allow_outside_root=True)
    yield name, gt_path, gt
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _outputs(dicts, q=40, seed=1):
    import torch
    from detectron2.structures import Boxes, Instances

    rng = np.random.default_rng(seed)
    inputs, outputs = [], []
    for d in dicts:
        anns, rels = d["annotations"], d["relations"]
        pb = np.zeros((2 * q, 4), np.float32)
        pc = np.zeros(2 * q, np.int64)
        rs = (rng.random((q, 117)) ** 3 * 0.5).astype(np.float32)
        for j in range(q):
            r = rels[j % len(rels)]
            pb[j] = np.asarray(anns[r["subject"]]["bbox"], np.float32) + rng.normal(0, 9, 4)
            pb[q + j] = np.asarray(anns[r["object"]]["bbox"], np.float32) + rng.normal(0, 9, 4)
            pc[q + j] = anns[r["object"]]["category_id"] if j % 5 else int(rng.integers(80))
            rs[j, r["predicate"]] = 0.3 + 0.7 * rng.random()
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2])
        inst = Instances((480, 640), pred_boxes=Boxes(torch.from_numpy(pb)), pred_classes=torch.from_numpy(pc),
                         scores=torch.ones(2 * q))
        inputs.append({"file_name": d["file_name"], "image_id": d["image_id"]})
        outputs.append({"instances": inst, "pairs": {"subject": torch.arange(q), "object": torch.arange(q, 2 * q),
                                                      "relation_scores": torch.from_numpy(rs)}})
    return inputs, outputs


@pytest.mark.parametrize("kw", [dict(protocol="qpic"), dict(protocol="qpic", use_nms=True),
                                dict(protocol="matlab"), dict(protocol="matlab", top_k=30),
                                dict(protocol="qpic", known_object=True)])
def test_cli_rescoring_of_training_predictions_is_identical(hico_dataset, tmp_path, kw):
    from detectron2.data import DatasetCatalog

    from rlipv2.evaluation import HICOEvaluator

    name, gt_path, _ = hico_dataset
    dicts = DatasetCatalog.get(name)
    inputs, outputs = _outputs(dicts)
    out_dir = tmp_path / "eval"
    ev = HICOEvaluator(name, str(out_dir), distributed=False, **kw)
    ev.reset()
    ev.process(inputs, outputs)
    training = ev.evaluate()["hoi"]
    assert not np.isnan(training["mAP_rare"]) and not np.isnan(training["mAP_non_rare"])
    assert 0 < training["mAP"] < 0.95
    npz = out_dir / "hico_predictions.npz"
    meta = read_prediction_meta(npz)
    assert meta["protocol"] == kw["protocol"] and meta["gt_file"] == str(gt_path)
    assert meta["object_names"][0] == "person" and len(meta["verb_names"]) == 117
    assert "fewer than 10 training instances" in meta["rare_source"]
    # the CLI with nothing but the predictions file: the same numbers, to the last bit
    cli = hico.main(["--pred", str(npz), "--json-out", str(tmp_path / "cli.json"), "--output-dir", str(tmp_path)])
    assert cli["hoi"] == training
    assert cli["sources"]["correct_mat"] == "predictions file" and cli["sources"]["protocol"] == "predictions file"
    saved = json.loads((tmp_path / "cli.json").read_text())
    assert saved["unit"].startswith("fraction") and saved["hoi"]["mAP"] == training["mAP"]
    # per-class CSV names classes by their texts
    header, first = (tmp_path / "hico_per_class_ap.csv").read_text().splitlines()[:2]
    label = first.split(",")[0]
    assert label.split()[0] in ("person", "*") and not any(tok.isdigit() for tok in label.split()), label
    # and as a module, printing percent
    p = subprocess.run([sys.executable, "-m", "rlipv2.evaluation.hico", "--pred", str(npz)], capture_output=True,
                       text=True, check=True)
    assert f"mAP full {100 * training['mAP']:.2f}%" in p.stdout


def test_matlab_protocol_keeps_every_detection_unless_top_k_is_given(tmp_path):
    """MATLAB VOCevaldet_bboxpair has no per-image cap (docs/evaluation_protocols.md 1.2: "There is no cap
    on the number of detections per image or per class"); an explicit --top-k applies to both protocols."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("reference_hico", METADATA_DIR.parents[2] / "tests" /
                                                  "evaluation" / "reference_hico.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    from rlipv2.evaluation.hico_io import IdMaps, gt_images_from_json, write_npz_atomic

    gt_path = tmp_path / "gt.json"
    _gt_json(gt_path, n_img=6, seed=3)
    cm = np.load(METADATA_DIR / "corre_hico.npy")
    np.save(tmp_path / "cm.npy", cm)
    ids = IdMaps.from_spec(cm)
    gts = gt_images_from_json(gt_path, ids)
    rng = np.random.default_rng(0)
    q, preds = 30, []
    for g in gts:  # 30 queries on person/object boxes, every one with many valid verbs: > 100 valid per image
        b = np.concatenate([g["boxes"][g["hois"][np.arange(q) % len(g["hois"]), 0]],
                            g["boxes"][g["hois"][np.arange(q) % len(g["hois"]), 1]]]) + rng.normal(0, 3, (2 * q, 4))
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2])
        lab = np.concatenate([np.zeros(q, np.int64), g["labels"][g["hois"][np.arange(q) % len(g["hois"]), 1]]])
        vs = (0.5 + 0.5 * rng.random((q, 117))).astype(np.float32)
        # the true verb scores low: beyond a cap of 100 per image, found only without it
        vs[np.arange(q), g["hois"][np.arange(q) % len(g["hois"]), 2]] = (0.01 + 0.1 * rng.random(q)).astype(np.float32)
        preds.append({"boxes": b.astype(np.float32), "labels": lab, "verb_scores": vs,
                      "sub_ids": np.arange(q), "obj_ids": np.arange(q, 2 * q)})
    valid_per_image = [int((cm[:, p["labels"][q:]] != 0).sum()) for p in preds]
    assert min(valid_per_image) > 100

    def arrays():
        yield "file_names", np.array([g["file_name"] for g in gts])
        for i, p in enumerate(preds):
            yield f"boxes_{i}", p["boxes"]
            yield f"labels_{i}", np.asarray(COCO)[p["labels"]]
            yield f"verb_scores_{i}", p["verb_scores"]
            yield f"sub_ids_{i}", p["sub_ids"]
            yield f"obj_ids_{i}", p["obj_ids"]

    write_npz_atomic(tmp_path / "p.npz", arrays())
    base = ["--gt", str(gt_path), "--pred", str(tmp_path / "p.npz"), "--correct-mat", str(tmp_path / "cm.npy")]
    uncapped = hico.main(base + ["--protocol", "matlab"])
    assert uncapped["top_k"] == 0 and uncapped["num_candidates"] == sum(valid_per_image)
    slow, _ = ref.reference_matlab(preds, gts, cm, [], top_k=0)
    assert uncapped["hoi"]["mAP"] == slow["mAP"]
    capped = hico.main(base + ["--protocol", "matlab", "--top-k", "100"])
    assert capped["num_candidates"] == 100 * len(gts) and capped["hoi"]["mAP"] < uncapped["hoi"]["mAP"]
    assert capped["hoi"]["mAP"] == ref.reference_matlab(preds, gts, cm, [], top_k=100)[0]["mAP"]
    qpic = hico.main(base)
    assert qpic["top_k"] == 100 and qpic["num_candidates"] == 100 * len(gts)
    assert hico.main(base + ["--top-k", "7"])["num_candidates"] == 7 * len(gts)


def test_object_ids_inline_list_or_file_and_errors_name_the_flag(tmp_path):
    gt_path = tmp_path / "gt.json"
    _gt_json(gt_path, n_img=3)
    cm = np.load(METADATA_DIR / "corre_hico.npy")
    np.save(tmp_path / "cm.npy", cm)
    from rlipv2.evaluation.hico_io import write_npz_atomic

    def arrays():
        yield "file_names", np.array([f"HICO_test2015_{i:08d}.jpg" for i in range(3)])
        for i in range(3):
            yield f"boxes_{i}", np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32)
            yield f"labels_{i}", np.array([1, COCO[3]])
            yield f"verb_scores_{i}", np.full((1, 117), 0.5, np.float32)
            yield f"sub_ids_{i}", np.array([0])
            yield f"obj_ids_{i}", np.array([1])

    write_npz_atomic(tmp_path / "p.npz", arrays())
    base = ["--gt", str(gt_path), "--pred", str(tmp_path / "p.npz"), "--correct-mat", str(tmp_path / "cm.npy")]
    inline = hico.main(base + ["--object-ids", json.dumps(COCO)])
    (tmp_path / "ids.json").write_text(json.dumps(COCO))
    from_file = hico.main(base + ["--object-ids", str(tmp_path / "ids.json")])
    assert inline["num_candidates"] == from_file["num_candidates"] == 300
    assert inline["hoi"]["mAP"] == from_file["hoi"]["mAP"] == hico.main(base)["hoi"]["mAP"]

    def cli_error(args):
        p = subprocess.run([sys.executable, "-m", "rlipv2.evaluation.hico", *args], capture_output=True, text=True)
        assert p.returncode == 2, p.stderr
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        return lines[-1]

    assert "--object-ids" in cli_error(base + ["--object-ids", "[1, 2"]) and "JSON list" in \
        cli_error(base + ["--object-ids", "[1, 2"])
    assert "--object-ids" in cli_error(base + ["--object-ids", "nope.json"])
    msg = cli_error(base + ["--object-ids", "[1, 2, 3]"])
    assert msg.count("\n") == 0 and "--object-ids" in msg and "expected" in msg
    msg = cli_error(["--pred", str(tmp_path / "p.npz"), "--correct-mat", str(tmp_path / "cm.npy")])
    assert msg.startswith("python -m rlipv2.evaluation.hico: error: ValueError: --gt: required") and "file_name" in msg
    msg = cli_error(["--gt", str(gt_path), "--pred", str(tmp_path / "p.npz")])
    assert "--correct-mat: required" in msg
    (tmp_path / "bad.json").write_text("[{\"file_name\": 3}]")
    msg = cli_error(base[:0] + ["--gt", str(tmp_path / "bad.json")] + base[2:])
    assert msg.startswith("python -m rlipv2.evaluation.hico: error:") and "--gt" in msg
    assert "expected: test_hico.json" in msg


def test_cli_with_nms_never_imports_torch(tmp_path):
    """The offline CLI runs its triplet NMS with numpy: no torch, no detectron2 in the process."""
    gt_path = tmp_path / "gt.json"
    gt = _gt_json(gt_path, n_img=4)
    from rlipv2.evaluation.hico_io import write_npz_atomic

    def arrays():
        yield "file_names", np.array([g["file_name"] for g in gt])
        for i, g in enumerate(gt):
            b = np.array([a["bbox"] for a in g["annotations"]], np.float32)
            yield f"boxes_{i}", np.concatenate([b, b + 1])
            yield f"labels_{i}", np.concatenate([[a["category_id"] for a in g["annotations"]]] * 2)
            yield f"verb_scores_{i}", np.full((len(b), 117), 0.5, np.float32)
            yield f"sub_ids_{i}", np.arange(len(b))
            yield f"obj_ids_{i}", np.arange(len(b), 2 * len(b))

    write_npz_atomic(tmp_path / "p.npz", arrays())
    code = ("import runpy, sys; sys.argv = ['hico', '--gt', sys.argv[1], '--pred', sys.argv[2], '--correct-mat', "
            "sys.argv[3], '--nms']; runpy.run_module('rlipv2.evaluation.hico', run_name='__main__'); "
            "print('HEAVY', sorted(m for m in ('torch', 'detectron2') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code, str(gt_path), str(tmp_path / "p.npz"),
                        str(METADATA_DIR / "corre_hico.npy")], capture_output=True, text=True, check=True)
    assert "NMS" in p.stdout and "HEAVY []" in p.stdout, p.stdout + p.stderr


def test_rescoring_a_run_on_part_of_the_test_set(hico_dataset, tmp_path):
    """HICOEvaluator scores the images it processed; the CLI scores the same images of the GT file."""
    from detectron2.data import DatasetCatalog

    from rlipv2.evaluation import HICOEvaluator

    name, _, _ = hico_dataset
    dicts = DatasetCatalog.get(name)[5:23]
    inputs, outputs = _outputs(dicts, seed=4)
    ev = HICOEvaluator(name, str(tmp_path / "eval"), distributed=False, use_nms=True)
    ev.process(inputs, outputs)
    training = ev.evaluate()["hoi"]
    cli = hico.main(["--pred", str(tmp_path / "eval" / "hico_predictions.npz")])
    assert cli["num_images"] == len(dicts) and cli["hoi"] == training
