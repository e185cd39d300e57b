"""The synthetic world's pre-training sets: relation set (VG format), caption set (COCO format + captions +
hidden truth), few-shot splits, and the caption vocabulary that pseudo-label scoring relies on."""

import json
import os
from collections import Counter

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from rlipv2.data import SyntheticWorldConfig, register_synthetic_world
from rlipv2.data.synthetic import (
    COCO_FILES,
    OBJECT_RELATIONS,
    OBJECTS,
    PRETRAINING_COMBINATIONS,
    PRETRAINING_ONLY_VERBS,
    STACKS,
    UNSEEN_COMBINATIONS,
    VERBS,
    caption_set_files,
    generate_world,
    render_scene,
)
from rlipv2.data.synthetic_captions import OBJECT_WORDS, PREDICATE_TEXTS, VERB_PHRASES, captions_for_image

CFG = SyntheticWorldConfig(seed=5, image_size=128, num_train=20, num_test=6, num_vg=40, max_people=1,
                           pretraining_sets=True, num_coco=30)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "w"
    generate_world(str(out), CFG, num_workers=1)
    return out


def _load(world, key):
    with open(os.path.join(world, "annotations", COCO_FILES.get(key, key)), encoding="utf-8") as f:
        return json.load(f)


def test_tags_and_config_checks():
    plain = SyntheticWorldConfig(seed=5, image_size=128, num_train=20, num_test=6, num_vg=40, max_people=1)
    assert "_pt" not in plain.tag  # worlds without the pre-training sets keep their earlier tags (cached worlds)
    assert CFG.tag.startswith(plain.tag) and CFG.tag != plain.tag
    with pytest.raises(ValueError, match="pretraining_sets"):
        SyntheticWorldConfig(num_coco=5)
    with pytest.raises(ValueError, match="no caption set"):
        caption_set_files(plain)


def test_hoi_splits_unchanged_by_the_pretraining_sets(tmp_path, world):
    """The downstream images and annotations are those of the same world without pre-training sets."""
    plain = SyntheticWorldConfig(seed=5, image_size=128, num_train=20, num_test=6, num_vg=0, max_people=1)
    generate_world(str(tmp_path / "plain"), plain, num_workers=1)
    for f in ("trainval_hoi.json", "test_hoi.json"):
        assert _load(world, f) == _load(tmp_path / "plain", f)
    name = "synthetic_train_000003.jpg"
    a = np.asarray(Image.open(world / "images" / "train" / name))
    b = np.asarray(Image.open(tmp_path / "plain" / "images" / "train" / name))
    assert np.array_equal(a, b)


def test_relation_set_has_more_relation_types(world):
    vg = _load(world, "vg_scene_graphs.json")
    assert len(vg) == CFG.num_vg
    preds = Counter(r["predicate"] for e in vg for r in e["relationships"])
    assert "no interaction" not in preds
    assert set(preds) <= set(PRETRAINING_COMBINATIONS) | set(OBJECT_RELATIONS)
    # relation types that never appear downstream are there
    assert set(preds) & set(PRETRAINING_ONLY_VERBS) and "on" in preds
    assert not set(PRETRAINING_ONLY_VERBS) & set(VERBS)
    for e in vg:
        names = {o["object_id"]: o["names"] for o in e["objects"]}
        for o in e["objects"]:
            assert o["w"] > 0 and o["h"] > 0 and 0 <= o["x"] and o["x"] + o["w"] <= 128.5
        for r in e["relationships"]:
            s, o = names[r["subject_id"]], names[r["object_id"]]
            if r["predicate"] == "on":
                assert (s, o) in STACKS
            else:
                assert s == "person" and o in PRETRAINING_COMBINATIONS[r["predicate"]]


def test_pretraining_scenes_reach_the_held_out_combinations():
    """Held-out combinations are only unseen in the downstream training data: the pre-training scene
    distribution draws every valid combination."""
    seen = set()
    for i in range(400):
        _, objs, rels = render_scene((1, 3, i), 128, 1, False, pretraining=True)
        seen |= {(v, objs[o][0]) for s, o, v in rels}
    assert set(UNSEEN_COMBINATIONS) <= seen


def test_caption_set_files(world):
    det = _load(world, "detections")
    caps = _load(world, "captions")
    truth = _load(world, "true_relations")
    para = _load(world, "paraphrases")
    assert len(det["images"]) == CFG.num_coco == len(truth) == len(caps)
    assert [c["name"] for c in sorted(det["categories"], key=lambda c: c["id"])] == OBJECTS
    assert set(para) == set(OBJECTS) and "bike" in para["bicycle"] and "box" in para["box"]
    by_image = {}
    for a in det["annotations"]:
        by_image.setdefault(a["image_id"], []).append(tuple(round(v, 1) for v in a["bbox"]))
    for im, t in zip(det["images"], truth):
        assert im["id"] == t["image_id"] and os.path.isfile(world / "images" / "coco" / im["file_name"])
        assert len(caps[str(im["id"])]) == CFG.captions_per_image
        # the hidden truth uses the detection file's boxes, in the same order
        assert [(o["x"], o["y"], o["w"], o["h"]) for o in t["objects"]] == by_image.get(im["id"], [])
    # the hidden truth is aside from what training reads
    assert COCO_FILES["true_relations"].startswith("hidden/")


def test_captions_mix_true_wrong_absent_and_plural():
    rng = np.random.default_rng(0)
    objects = [("person", [0, 0, 10, 10]), ("horse", [5, 5, 30, 30]), ("person", [40, 0, 50, 10]),
               ("horse", [40, 5, 70, 30])]
    relations = [(0, 1, "ride"), (2, 3, "ride")]
    caps = [c for _ in range(60) for c in captions_for_image(objects, relations, rng, 5)]
    text = " | ".join(caps)
    assert any(p in text for p in VERB_PHRASES["ride"][0] + VERB_PHRASES["ride"][1])
    plural = {p for _, p in OBJECT_WORDS["horse"]}
    assert any(w in text for w in plural)  # two riders of horses: plural captions
    assert any(a in text for a in ("frisbee", "skateboard", "motorcycle", "laptop", "cat", "car", "surfboard"))
    wrong = [v for v in VERB_PHRASES if v not in ("ride", "on") and "horse" in PRETRAINING_COMBINATIONS.get(v, [])]
    assert any(p in text for v in wrong for p in VERB_PHRASES[v][0])  # wrong relations between present things
    # deterministic given the generator's seed
    assert captions_for_image(objects, relations, np.random.default_rng(3)) == captions_for_image(
        objects, relations, np.random.default_rng(3))


def test_predicate_texts_cover_what_the_parser_returns():
    """Every relation text SceneGraphParser extracts from true-relation captions is listed for its relation,
    so pseudo-label scoring (rlipv2.pseudo_labeling.quality) never misses a correct label."""
    pytest.importorskip("sng_parser")
    from rlipv2.data.synthetic_captions import _relation_caption
    from rlipv2.pseudo_labeling.parsing import parse_captions

    rng = np.random.default_rng(1)
    caps, verbs = [], []
    for verb in VERB_PHRASES:
        combos = STACKS if verb == "on" else [("person", o) for o in PRETRAINING_COMBINATIONS[verb]]
        for _ in range(25):
            s, o = combos[rng.integers(len(combos))]
            caps.append(_relation_caption(rng, s, verb, o, plural=rng.random() < 0.3))
            verbs.append(verb)
    places = ("park", "grass", "field", "street", "beach", "picture", "group")
    missing = Counter()
    for verb, graph in zip(verbs, parse_captions(caps)):
        for s, rel, o in graph.triplets():
            if any(p in s or p in o for p in places):
                continue  # relations to the scene ("in a park"), never matched to a box
            if rel not in PREDICATE_TEXTS[verb]:
                missing[(verb, rel)] += 1
    assert not missing, missing


def test_few_shot_splits_registered(world, registered):
    names = register_synthetic_world(root=str(world.parent), config=CFG, prefix="t_pt")
    registered.extend(names)
    os.rename(world, world.parent / CFG.tag)  # the registered world's folder
    try:
        full = DatasetCatalog.get("t_pt_hoi_train")
        one = DatasetCatalog.get("t_pt_hoi_train_1pct")
        ten = DatasetCatalog.get("t_pt_hoi_train_10pct")
        assert len(one) == 1 and len(ten) == 2 and len(full) == 20
        files = {d["file_name"] for d in full}
        assert {d["file_name"] for d in ten} <= files
        assert MetadataCatalog.get("t_pt_hoi_train_10pct").few_shot_fraction == 0.1
        assert [d["file_name"] for d in DatasetCatalog.get("t_pt_hoi_train_10pct")] == [d["file_name"] for d in ten]
        vg = DatasetCatalog.get("t_pt_vg_train")
        assert any(r for d in vg for r in d["relations"])
        assert set(PRETRAINING_ONLY_VERBS) & set(MetadataCatalog.get("t_pt_vg_train").predicate_classes)
    finally:
        os.rename(world.parent / CFG.tag, world)
