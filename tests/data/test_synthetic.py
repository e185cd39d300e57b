"""The synthetic relation world: deterministic, real JPEGs, geometry-consistent relations, registered."""

import hashlib
import json
import os

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from rlipv2.data import RelationDatasetMapper, SyntheticWorldConfig, ensure_world, register_synthetic_world
from rlipv2.data.synthetic import OBJECTS, UNSEEN_COMBINATIONS, VERBS, correct_mat, generate_world

CFG = SyntheticWorldConfig(seed=3, image_size=128, num_train=12, num_test=8, num_vg=4, unseen_fraction=0.5)


def _digest(d):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(d)):
        for f in sorted(files):
            if f == "world.json":
                continue
            with open(os.path.join(dirpath, f), "rb") as fh:
                h.update(f.encode() + fh.read())
    return h.hexdigest()


def test_deterministic_from_seed(tmp_path):
    generate_world(str(tmp_path / "a"), CFG, num_workers=1)
    generate_world(str(tmp_path / "b"), CFG, num_workers=1)
    generate_world(str(tmp_path / "c"), SyntheticWorldConfig(**{**CFG.__dict__, "seed": 4}), num_workers=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_world_content(tmp_path):
    d = ensure_world(str(tmp_path), CFG, num_workers=1)
    ann = os.path.join(d, "annotations")
    train = json.load(open(os.path.join(ann, "trainval_hoi.json")))
    test = json.load(open(os.path.join(ann, "test_hoi.json")))
    unseen = json.load(open(os.path.join(ann, "test_unseen_hoi.json")))
    assert len(train) == 12 and len(test) == 8 and 0 < len(unseen) <= 8
    held = {(VERBS.index(v) + 1, OBJECTS.index(o) + 1) for v, o in UNSEEN_COMBINATIONS}
    cm = correct_mat()
    for split, entries in (("train", train), ("test", test)):
        for e in entries:
            im = Image.open(os.path.join(d, "images", split, e["file_name"]))
            assert im.format == "JPEG" and im.size == (128, 128)
            for a in e["annotations"]:
                x1, y1, x2, y2 = a["bbox"]
                assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
            for r in e["hoi_annotation"]:
                s, o = e["annotations"][r["subject_id"]], e["annotations"][r["object_id"]]
                assert s["category_id"] == 1  # subjects are people
                assert cm[r["category_id"] - 1, o["category_id"] - 1] == 1  # valid combination
                pair = (r["category_id"], o["category_id"])
                if split == "train":
                    assert pair not in held
                if VERBS[r["category_id"] - 1] == "ride":  # rider above the mount, overlapping it
                    assert (
                        s["bbox"][1] < o["bbox"][1]
                        and s["bbox"][3] <= o["bbox"][3] + 1
                        and s["bbox"][0] < o["bbox"][2]
                        and o["bbox"][0] < s["bbox"][2]
                    )
                if VERBS[r["category_id"] - 1] == "carry":  # carried object above the person's feet
                    assert o["bbox"][1] <= s["bbox"][1] + 2
    assert all(
        any((r["category_id"], e["annotations"][r["object_id"]]["category_id"]) in held for r in e["hoi_annotation"])
        for e in unseen
    )
    vg = json.load(open(os.path.join(ann, "vg_scene_graphs.json")))
    assert len(vg) == 4 and all(os.path.exists(os.path.join(d, "images", "vg", f"{e['image_id']}.jpg")) for e in vg)
    assert np.load(os.path.join(ann, "corre_mat.npy")).shape == (len(VERBS), len(OBJECTS))


def test_registration_is_lazy_and_loads(tmp_path, registered):
    names = register_synthetic_world(root=str(tmp_path), config=CFG, prefix="t_syn")
    registered.extend(names)
    assert set(names) == {"t_syn_hoi_train", "t_syn_hoi_train_1pct", "t_syn_hoi_train_10pct", "t_syn_hoi_test",
                          "t_syn_hoi_test_unseen", "t_syn_vg_train"}
    assert not os.listdir(tmp_path)  # nothing generated yet
    md = MetadataCatalog.get("t_syn_hoi_train")
    assert md.thing_classes == OBJECTS and md.predicate_classes == VERBS and md.subject_class == 0
    assert md.zero_shot_unseen_triplets == [(VERBS.index(v), OBJECTS.index(o)) for v, o in UNSEEN_COMBINATIONS]
    dicts = DatasetCatalog.get("t_syn_hoi_train")
    assert len(dicts) == 12 and os.path.exists(dicts[0]["file_name"])
    assert isinstance(md.rare_triplets, list)
    for n in ("t_syn_hoi_test", "t_syn_hoi_test_unseen"):  # zero-shot convention: unseen in the "rare" slot
        mu = MetadataCatalog.get(n)
        assert sorted(mu.rare_triplets) == sorted(md.zero_shot_unseen_triplets) and mu.rare_slot == "zero_shot_unseen"
        assert len(mu.nonrare_triplets) == int(correct_mat().sum()) - len(UNSEEN_COMBINATIONS)
    vg = DatasetCatalog.get("t_syn_vg_train")
    mv = MetadataCatalog.get("t_syn_vg_train")
    assert len(vg) == 4 and "person" in mv.thing_classes and "no interaction" not in mv.predicate_classes
    m = RelationDatasetMapper(
        is_train=True, min_sizes=(128, 160), max_size=256, crop_resize_sizes=(128,), crop_size=(96, 128)
    )
    outs = [m(d) for d in dicts]
    out = next(o for o in outs if o is not None)
    assert out["image"].shape[0] == 3 and out["object_texts"][0] in OBJECTS
    assert all(t in VERBS for o in outs if o is not None for t in o["predicate_texts"])


def test_lazyconfig_train_and_test_loaders(tmp_path, registered):
    from detectron2.config import LazyCall as L
    from detectron2.config import instantiate
    from detectron2.data import build_detection_test_loader, build_detection_train_loader

    from rlipv2.data import LabelSequenceBuilder, get_relation_dataset_dicts

    registered.extend(register_synthetic_world(root=str(tmp_path), config=CFG, prefix="t_lz"))
    train = L(build_detection_train_loader)(
        dataset=L(get_relation_dataset_dicts)(names="t_lz_hoi_train", filter_no_relations=True),
        mapper=L(RelationDatasetMapper)(
            is_train=True, min_sizes=(96, 128), max_size=200, crop_resize_sizes=(96,), crop_size=(64, 96)
        ),
        total_batch_size=3,
        num_workers=0,
    )
    batch = next(iter(instantiate(train)))
    assert len(batch) == 3 and all(x["relations"].shape[0] > 0 for x in batch)
    seq = LabelSequenceBuilder.from_metadata(MetadataCatalog.get("t_lz_hoi_train"))(batch)
    assert seq.num_object_labels == len(OBJECTS) and len(seq.texts) == len(OBJECTS) + 1 + len(VERBS)
    test = L(build_detection_test_loader)(
        dataset=L(get_relation_dataset_dicts)(names="t_lz_hoi_test"),
        mapper=L(RelationDatasetMapper)(is_train=False, test_min_size=128, test_max_size=200),
        num_workers=0,
    )
    outs = [x[0] for x in instantiate(test)]
    assert len(outs) == 8 and all(tuple(x["image"].shape[1:]) == (128, 128) for x in outs)


def test_default_world_config_from_env(monkeypatch):
    monkeypatch.setenv("RLIPV2_SYNTHETIC_IMAGE_SIZE", "128")
    monkeypatch.setenv("RLIPV2_SYNTHETIC_NUM_TRAIN", "40")
    cfg = SyntheticWorldConfig.from_env()
    assert (cfg.image_size, cfg.num_train, cfg.num_test) == (128, 40, SyntheticWorldConfig().num_test)
    assert cfg.tag != SyntheticWorldConfig().tag
