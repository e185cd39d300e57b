"""RelationPredictor (triplets from contract-4 outputs), the visualizer and tools/demo.py."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.structures import Boxes, Instances
from engine_toys import ToyRelationModel
from PIL import Image
from torch import nn

from rlipv2.engine.checkpoint import RLIPv2Checkpointer
from rlipv2.engine.predictor import RelationPredictor, parse_label_list, relation_triplets
from rlipv2.utils.visualizer import draw_relation_triplets

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


class FakeRelationModel(nn.Module):
    """Returns fixed contract-4 outputs, scaled to the original image size it is told."""

    def __init__(self, rel_scores):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.rel_scores = torch.tensor(rel_scores, dtype=torch.float32)  # (Q, R)
        self.texts = None
        self.seen_shapes = []
        self.calls_to_set = 0

    def set_label_texts(self, object_texts, relation_texts):
        self.texts = (list(object_texts), list(relation_texts))
        self.calls_to_set += 1

    def forward(self, batched_inputs):
        out = []
        for x in batched_inputs:
            self.seen_shapes.append(tuple(x["image"].shape))
            h, w = x["height"], x["width"]
            Q = self.rel_scores.shape[0]
            # normalised boxes: subjects left half, objects right half; pair 3 duplicates pair 0
            sub = torch.tensor([[0.0, 0.0, 0.4, 0.5], [0.1, 0.5, 0.4, 1.0], [0.0, 0.0, 0.2, 0.2], [0.0, 0.0, 0.4, 0.5]])
            obj = torch.tensor([[0.5, 0.0, 0.9, 0.5], [0.6, 0.5, 1.0, 1.0], [0.5, 0.5, 0.7, 0.7],
                                [0.5, 0.0, 0.9, 0.52]])
            boxes = torch.cat([sub[:Q], obj[:Q]]) * torch.tensor([w, h, w, h])
            classes = torch.tensor([0] * Q + [1, 2, 1, 1][:Q])
            inst = Instances((h, w), pred_boxes=Boxes(boxes), pred_classes=classes, scores=torch.full((2 * Q,), 0.9))
            out.append({"instances": inst, "pairs": {"subject": torch.arange(Q), "object": torch.arange(Q) + Q,
                                                     "relation_scores": self.rel_scores}})
        return out


SCORES = [[0.9, 0.1], [0.5, 0.35], [0.2, 0.05], [0.8, 0.0]]


def test_parse_label_list():
    assert parse_label_list(" person, horse ,dog,, person ") == ["person", "horse", "dog"]
    assert parse_label_list(["hold  the", "ride"]) == ["hold the", "ride"]
    with pytest.raises(ValueError, match="empty"):
        parse_label_list(" , ")


def test_predictor_triplets_threshold_nms_topk_and_resize():
    model = FakeRelationModel(SCORES)
    pred = RelationPredictor(model, min_size=50, max_size=1333, score_thresh=0.3, device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (100, 200, 3), dtype=np.uint8)
    res = pred(img, objects="person, horse, dog", relations=["ride", "feed"])
    assert model.texts == (["person", "horse", "dog"], ["ride", "feed"])
    assert model.seen_shapes == [(3, 50, 100)]  # shortest side resized to 50
    assert (res["height"], res["width"]) == (100, 200)
    got = [(t["subject"]["label"], t["relation"], t["object"]["label"], round(t["score"], 3)) for t in res["triplets"]]
    # pair 3 duplicates pair 0 (same labels, IoU > 0.5): removed by triplet NMS
    assert got == [("person", "ride", "horse", 0.9), ("person", "ride", "dog", 0.5), ("person", "feed", "dog", 0.35)]
    assert all(t["score"] >= 0.3 for t in res["triplets"])
    assert res["triplets"][0]["subject"]["box"] == pytest.approx([0.0, 0.0, 80.0, 50.0])  # original pixels
    assert res["triplets"][0]["object"]["box"] == pytest.approx([100.0, 0.0, 180.0, 50.0])

    pred2 = RelationPredictor(model, min_size=50, score_thresh=0.3, nms_thresh=None, top_k=2, device="cpu",
                              object_texts="person, horse, dog", relation_texts="ride, feed")
    res2 = pred2(img)
    assert [round(t["score"], 3) for t in res2["triplets"]] == [0.9, 0.8]  # no NMS, top-2
    pred2(img)
    assert model.calls_to_set == 2  # once per predictor: the vocabulary did not change


def test_predictor_clear_errors(tmp_path):
    img = np.zeros((20, 20, 3), dtype=np.uint8)
    pred = RelationPredictor(FakeRelationModel(SCORES), min_size=20, device="cpu")
    with pytest.raises(ValueError, match="2 relation columns but 3 relation texts"):
        pred(img, objects="a, b, c", relations="x, y, z")
    with pytest.raises(ValueError, match="object texts"):
        pred(img, objects="a", relations="x, y")
    with pytest.raises(ValueError, match="needs object and relation label texts"):
        pred(img)
    with pytest.raises(ValueError, match="cannot read image .*missing.jpg"):
        pred(str(tmp_path / "missing.jpg"), objects="a, b, c", relations="x, y")
    with pytest.raises(TypeError, match="set_label_texts"):
        RelationPredictor(nn.Linear(1, 1), device="cpu")(img, objects="a", relations="x")


def test_default_vocabulary_from_model():
    model = FakeRelationModel(SCORES)
    model.fixed_vocabulary = lambda: (["man", "bike", "cup"], ["hold", "push"])
    res = RelationPredictor(model, min_size=20, device="cpu")(np.zeros((20, 20, 3), dtype=np.uint8))
    assert model.texts == (["man", "bike", "cup"], ["hold", "push"])
    assert res["triplets"][0]["relation"] == "hold" and res["triplets"][0]["object"]["label"] == "bike"


def test_bgr_input_is_flipped():
    model = FakeRelationModel(SCORES)
    pred = RelationPredictor(model, min_size=4, max_size=100, device="cpu", input_format="BGR")
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    img[..., 0] = 255  # blue in BGR
    rgb, _ = pred.read_image(img)
    assert rgb[0, 0].tolist() == [0, 0, 255]


def test_relation_triplets_and_drawing():
    model = FakeRelationModel(SCORES)
    out = model([{"image": torch.zeros(3, 40, 60, dtype=torch.uint8), "height": 40, "width": 60}])[0]
    trip = relation_triplets(out, ["person", "horse", "dog"], ["ride", "feed"], score_thresh=0.0, top_k=100,
                             nms_thresh=None)
    assert len(trip) == 8 and trip[0]["score"] >= trip[-1]["score"]
    img = np.full((40, 60, 3), 128, dtype=np.uint8)
    drawn = draw_relation_triplets(img, trip, max_triplets=3)
    assert drawn.shape == img.shape and drawn.dtype == np.uint8
    assert (drawn != img).any()  # something was drawn


def test_demo_on_generated_image(tmp_path):
    torch.manual_seed(0)
    model = ToyRelationModel(num_queries=4)
    weights_dir = tmp_path / "w"
    RLIPv2Checkpointer(model, str(weights_dir)).save("toy")
    cfg = tmp_path / "demo_cfg.py"
    cfg.write_text(textwrap.dedent("""
        from detectron2.config import LazyCall as L
        from engine_toys import ToyRelationModel
        model = L(ToyRelationModel)(num_queries=4)
    """))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(images / "b.jpg")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]), OMP_NUM_THREADS="1")
    p = subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo.py"), "--config-file", str(cfg), "--weights",
         str(weights_dir / "toy.pth"), "--input", str(images), "--objects", "person, horse, dog",
         "--relations", "ride, feed", "--score-thresh", "0.05", "--min-size", "32", "--device", "cpu",
         "--output", str(out), "model.dim=8"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-4000:]
    data = json.loads((out / "triplets.json").read_text())
    assert data["objects"] == ["person", "horse", "dog"] and data["relations"] == ["ride", "feed"]
    assert [os.path.basename(r["file_name"]) for r in data["images"]] == ["a.png", "b.jpg"]
    # drawings of small images are upscaled to a 480-px shortest side (--draw-min-size) for readable labels
    for r, size in zip(data["images"], [(640, 480), (480, 480)]):
        with Image.open(out / r["visualization"]) as im:
            assert im.size == size
        assert r["triplets"], "the toy model scores every pair above 0.05"
        for t in r["triplets"]:
            assert t["score"] >= 0.05 and t["relation"] in ("ride", "feed")
            assert t["subject"]["label"] in data["objects"] and t["object"]["label"] in data["objects"]
            assert len(t["subject"]["box"]) == 4
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_demo_says_when_no_triplet_passes_the_threshold(tmp_path, capsys):
    """No triplet above --score-thresh: the best score found and how to lower the threshold, per image."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_tool", REPO / "tools" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    model = FakeRelationModel(SCORES)
    weights = tmp_path / "fake.pth"
    torch.save({"model": model.state_dict()}, str(weights))
    cfg = tmp_path / "fake_cfg.py"
    cfg.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from detectron2.config import LazyCall as L
        from test_engine_predictor_demo import FakeRelationModel, SCORES
        model = L(FakeRelationModel)(rel_scores=SCORES)
    """))
    Image.fromarray(np.zeros((40, 60, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    assert demo.main(["--config-file", str(cfg), "--weights", str(weights), "--input", str(tmp_path / "img.png"),
                      "--objects", "person, horse, dog", "--relations", "ride, feed", "--score-thresh", "0.95",
                      "--min-size", "32", "--device", "cpu", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "img.png: no triplet scored >= 0.95; the best score was 0.900" in out
    import re

    suggested = float(re.search(r"Lower the threshold .*--score-thresh ([0-9.]+)", out).group(1))
    assert 0.85 <= suggested <= 0.9  # just below the best score
    data = json.loads((tmp_path / "out" / "triplets.json").read_text())
    assert data["images"][0]["triplets"] == [] and data["images"][0]["best_score"] == pytest.approx(0.9)
