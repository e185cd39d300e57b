"""The tagging stage: interface adapter, tiny random tagger, threshold and group batching."""
import pytest
import torch

from rlipv2.pseudo_labeling.tagging import (
    ModuleRelationTagger,
    RandomRelationTagger,
    RelationTagger,
    build_relation_tagger,
    tag_image,
)


def _image(h=48, w=64):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)


BOXES = torch.tensor([[0.0, 0.0, 20.0, 30.0], [10.0, 5.0, 60.0, 40.0], [30.0, 20.0, 50.0, 47.0]])
LABELS = torch.tensor([0, 1, 0])
OBJ_TEXTS = ["person", "horse"]


def test_random_tagger_is_deterministic_and_shaped():
    t1 = build_relation_tagger("RandomTagger", seed=3)
    t2 = build_relation_tagger("RandomTagger", seed=3)
    pairs = [torch.tensor([[0, 1], [2, 1]]), torch.tensor([[1, 0]])]
    s1 = t1.tag(_image(), BOXES, LABELS, OBJ_TEXTS, pairs, ["riding", "next to", "feeding"])
    s2 = t2.tag(_image(), BOXES, LABELS, OBJ_TEXTS, pairs, ["riding", "next to", "feeding"])
    assert [tuple(s.shape) for s in s1] == [(2, 3), (1, 3)]
    assert all(torch.equal(a, b) for a, b in zip(s1, s2))
    assert all(((s >= 0) & (s <= 1)).all() for s in s1)
    s3 = build_relation_tagger("RandomTagger", seed=4).tag(_image(), BOXES, LABELS, OBJ_TEXTS, pairs, ["riding"])
    assert not torch.allclose(s3[0], s1[0][:, :1])


class _Recorder(torch.nn.Module):
    """Checks the forward contract and returns fixed logits."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.inputs = None

    def forward(self, batched_inputs):
        self.inputs = batched_inputs
        return [self.logits[: len(x["sub_labels"])] for x in batched_inputs]


def test_module_adapter_contract():
    logits = torch.tensor([[3.0, -3.0], [0.0, -10.0]])
    rec = _Recorder(logits)
    tagger = ModuleRelationTagger(rec, min_size=96, max_size=200)
    scores = tagger.tag(_image(48, 64), BOXES, LABELS, OBJ_TEXTS, [torch.tensor([[0, 1], [2, 0]])], ["ride", "hold"])
    x = rec.inputs[0]
    assert x["image"].shape == (3, 96, 128) and (x["height"], x["width"]) == (48, 64)
    assert torch.allclose(x["sub_boxes"], BOXES[[0, 2]] * 2) and torch.allclose(x["obj_boxes"], BOXES[[1, 0]] * 2)
    assert x["sub_labels"].tolist() == [0, 0] and x["obj_labels"].tolist() == [1, 0]
    assert x["texts"] == ["person", "horse", "no objects", "ride", "hold"] and x["num_object_texts"] == 3
    assert torch.allclose(scores[0], logits.sigmoid())
    bad = ModuleRelationTagger(_Recorder(torch.zeros(2, 5)))
    with pytest.raises(ValueError, match="shape"):
        bad.tag(_image(), BOXES, LABELS, OBJ_TEXTS, [torch.tensor([[0, 1], [1, 2]])], ["ride", "hold"])


class _TableTagger(RelationTagger):
    """Scores = a fixed function of (pair, text) to test thresholding and batching."""

    needs_images = False

    def __init__(self):
        self.calls = []

    def tag(self, image, boxes, box_labels, object_texts, group_pairs, relation_texts):
        self.calls.append((len(group_pairs), list(relation_texts)))
        out = []
        for pairs in group_pairs:
            s = torch.zeros(len(pairs), len(relation_texts))
            for i, (a, b) in enumerate(pairs.tolist()):
                for j, t in enumerate(relation_texts):
                    s[i, j] = {"ride": 0.9, "hold": 0.05, "near": 0.051}.get(t, 0.0) if a < b else 0.01
            out.append(s)
        return out


def test_tag_image_threshold_and_merged_texts():
    groups = [[[[0, 1], [1, 0]], ["ride"]], [[[0, 2]], ["hold", "near"]], [[[1, 2]], ["ride"]]]
    t = _TableTagger()
    kept = tag_image(t, None, BOXES, LABELS, OBJ_TEXTS, groups, threshold=0.05, groups_per_batch=2)
    assert t.calls == [(2, ["ride", "hold", "near"]), (1, ["ride"])]  # union of texts per batch of groups
    # strictly above 0.05: "hold" (0.05) dropped, "near" (0.051) kept; pair (1, 0) scores 0.01 everywhere.
    # Texts are shared within a batch, so pair (0, 1) of group 1 is also scored against "near".
    assert kept == [[0, 1, "ride", pytest.approx(0.9)], [0, 1, "near", pytest.approx(0.051)],
                    [0, 2, "ride", pytest.approx(0.9)], [0, 2, "near", pytest.approx(0.051)],
                    [1, 2, "ride", pytest.approx(0.9)]]
    t1 = _TableTagger()
    kept1 = tag_image(t1, None, BOXES, LABELS, OBJ_TEXTS, groups, threshold=0.05, groups_per_batch=1)
    assert [k[:3] for k in kept1] == [[0, 1, "ride"], [0, 2, "near"], [1, 2, "ride"]]
    assert tag_image(t1, None, BOXES, LABELS, OBJ_TEXTS, [], threshold=0.05) == []


def test_random_relation_tagger_module_contract():
    m = RandomRelationTagger(seed=0)
    x = {"image": _image(), "sub_boxes": BOXES[:2], "obj_boxes": BOXES[1:], "sub_labels": torch.tensor([0, 1]),
         "obj_labels": torch.tensor([1, 0]), "texts": ["person", "horse", "no objects", "a", "b", "c"],
         "num_object_texts": 3, "height": 48, "width": 64}
    (out,) = m([x])
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_lazy_config_tagger_loads_config_and_weights(tmp_path):
    cfg = tmp_path / "tagger_cfg.py"
    cfg.write_text(
        "from detectron2.config import LazyCall as L\n"
        "from rlipv2.pseudo_labeling.tagging import RandomRelationTagger\n"
        "model = L(RandomRelationTagger)(dim=32, seed=0)\n")
    trained = RandomRelationTagger(seed=5)
    ckpt = tmp_path / "tagger.pth"
    torch.save({"model": trained.state_dict()}, ckpt)
    pairs = [torch.tensor([[0, 1], [2, 1]])]
    t = build_relation_tagger("LazyConfigTagger", config_file=str(cfg), weights=str(ckpt), min_size=64)
    expected = ModuleRelationTagger(trained, min_size=64).tag(_image(), BOXES, LABELS, OBJ_TEXTS, pairs, ["ride"])
    got = t.tag(_image(), BOXES, LABELS, OBJ_TEXTS, pairs, ["ride"])
    assert torch.allclose(got[0], expected[0])
    untrained = build_relation_tagger("LazyConfigTagger", config_file=str(cfg), min_size=64)
    assert not torch.allclose(untrained.tag(_image(), BOXES, LABELS, OBJ_TEXTS, pairs, ["ride"])[0], expected[0])
