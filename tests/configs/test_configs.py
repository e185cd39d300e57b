"""Every LazyConfig loads, carries the official hyperparameters, and its nodes instantiate.

- every file under ``projects/RLIPv2/configs`` and ``configs/common`` loads and resolves, and every
  ``_target_`` in it names an importable callable;
- the experiment configs match the per-script table of the official recipes (rlipv2_design.md §4);
- models instantiate with the tiny local text encoder (R50 / Swin-T real; Swin-L with fewer blocks);
- the data nodes of the HICO-DET and pre-training configs run against small fixture datasets through a
  model that keeps the experiment's criterion, label sequence and post-processing, down to the evaluator.
"""
from __future__ import annotations

import glob
import json
import math
import os

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROJECT_DIR = os.path.join(REPO, "projects", "RLIPv2", "configs")
COMMON_DIR = os.path.join(REPO, "configs", "common")
# The paper's relation-detection settings; the other project configs (R-Tagger, demo) are checked for
# loading and importable targets only.
PAPER_FAMILIES = ("pretrain", "hico", "vcoco", "oi")
_ALL_PROJECT = sorted(glob.glob(os.path.join(PROJECT_DIR, "*", "*.py")))
EXPERIMENTS = [p for p in _ALL_PROJECT if os.path.basename(os.path.dirname(p)) in PAPER_FAMILIES]
OTHER_PROJECT = [p for p in _ALL_PROJECT if p not in EXPERIMENTS]
COMMON = sorted(glob.glob(os.path.join(COMMON_DIR, "**", "*.py"), recursive=True))
BACKBONES = ("r50", "swint", "swinl")


def _rel(path):
    return os.path.relpath(path, REPO)


def _load(rel_path):
    return LazyConfig.load(os.path.join(PROJECT_DIR, rel_path))


def _sel(cfg, key):
    return OmegaConf.select(cfg, key)


# ----------------------------------------------------------------------------------- official table
# (epochs, lr_drop, lr, total batch, queries, subject_class, RQL, RPL, train set, test set); backbone
# and text-encoder lr are lr / 10 everywhere.
def _pretrain_rows():
    rows = {}
    for bb in BACKBONES:
        for data, names in (("vg", "vg_rel_train"), ("vgcoco", "vg_coco_rel_train"),
                            ("vgcocoo365", "vg_coco_o365_rel_train")):
            lr = 1.41e-4 if bb == "r50" or data == "vgcocoo365" else 1e-4
            batch = {("r50", "vgcocoo365"): 32, ("r50", "vgcoco"): 64, ("r50", "vg"): 64}.get(
                (bb, data), 64 if data == "vgcocoo365" else 32)
            rows[f"pretrain/rlipv2_parseda_{bb}_{data}.py"] = (
                20, 15, lr, batch, 200, True, True, True, names, "hico_det_test")
    return rows


def _hico_rows():
    rows = {}
    swin_batch = {"swint": 16, "swinl": 32}
    for bb in BACKBONES:
        full_lr = 1.41e-4 if bb == "r50" else 1e-4
        full_batch = {"r50": 64, "swint": 32, "swinl": 32}[bb]
        b = swin_batch.get(bb, 32)
        rows[f"hico/rlipv2_parseda_{bb}_hico.py"] = (
            20, 15, full_lr, full_batch, 128, True, True, False, "hico_det_train", "hico_det_test")
        for pct in ("1pct", "10pct"):
            rows[f"hico/rlipv2_parseda_{bb}_hico_{pct}.py"] = (
                10, 7, 1e-4, b, 200, False, True, False, f"hico_det_train_{pct}", "hico_det_test")
        rows[f"hico/rlipv2_parseda_{bb}_hico_uc_rf.py"] = (
            20, 15, 1e-4, b, 128, True, True, False, "hico_det_train_uc_rf", "hico_det_test_uc_rf")
        rows[f"hico/rlipv2_parseda_{bb}_hico_uc_nf.py"] = (
            10, 7, 1e-4, b, 128, True, True, False, "hico_det_train_uc_nf", "hico_det_test_uc_nf")
    return rows


def _downstream_rows():
    rows = {}
    for bb in BACKBONES:
        rows[f"vcoco/rlipv2_parseda_{bb}_vcoco.py"] = (
            20, 15, 1e-4, 32, 200, True, False, False, "vcoco_trainval", "vcoco_test")
        rows[f"oi/rlipv2_parseda_{bb}_oi.py"] = (
            20, 15, 1e-4, 16 if bb == "swinl" else 32, 200, True, True, False, "oi_v6_sgg_train", "oi_v6_sgg_test")
    return rows


OFFICIAL = {**_pretrain_rows(), **_hico_rows(), **_downstream_rows()}
NF_ZERO_SHOT = [f"hico/rlipv2_parseda_{bb}_hico_nf_zero_shot.py" for bb in BACKBONES]


def test_every_official_setting_has_a_config_and_nothing_else_is_there():
    expected = set(OFFICIAL) | set(NF_ZERO_SHOT)
    found = {os.path.relpath(p, PROJECT_DIR) for p in EXPERIMENTS}
    assert found == expected
    assert len(found) == 9 + 18 + 3 + 3


def _targets(node, path="cfg"):
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node._target_
        for k in node:
            if k != "_target_" and not OmegaConf.is_interpolation(node, k):
                yield from _targets(node[k], f"{path}.{k}")
    elif isinstance(node, ListConfig):
        for i, v in enumerate(node):
            yield from _targets(v, f"{path}[{i}]")


@pytest.mark.parametrize("path", EXPERIMENTS + OTHER_PROJECT + COMMON, ids=_rel)
def test_config_loads_resolves_and_targets_are_importable(path):
    from detectron2.utils.registry import locate

    cfg = LazyConfig.load(path)
    if path in EXPERIMENTS or path in OTHER_PROJECT or "/data/" in path:
        # every ${..} interpolation resolves (the optim / schedule / train pieces refer to each other)
        OmegaConf.to_container(cfg, resolve=True)
    targets = list(_targets(cfg))
    for where, target in targets:
        obj = locate(target) if isinstance(target, str) else target
        assert callable(obj), f"{_rel(path)}: {where}._target_ = {target!r} is not callable"
    if path in EXPERIMENTS:
        assert {"model", "dataloader", "optimizer", "lr_multiplier", "train"} <= set(cfg.keys())
        assert {"train", "test", "evaluator"} <= set(cfg.dataloader.keys())
        assert cfg.model.text_encoder.name_or_path == "roberta-base"
        assert cfg.dataloader.evaluator.output_dir == cfg.train.output_dir
        assert not os.path.isabs(cfg.train.init_checkpoint) and cfg.train.init_checkpoint.startswith("weights/")
        assert os.path.basename(path)[:-3] in cfg.train.output_dir
        assert len(targets) > 10


@pytest.mark.parametrize("rel_path", sorted(OFFICIAL))
def test_official_hyperparameters(rel_path):
    epochs, drop, lr, batch, queries, subject_class, rql, rpl, train_set, test_set = OFFICIAL[rel_path]
    cfg = _load(rel_path)
    assert (cfg.train.epochs, cfg.train.lr_drop) == (epochs, drop)
    assert cfg.optimizer.lr == pytest.approx(lr)
    assert _sel(cfg, "optimizer.params.backbone_lr") == pytest.approx(lr / 10)
    assert _sel(cfg, "optimizer.params.text_encoder_lr") == pytest.approx(lr / 10)
    assert cfg.optimizer.weight_decay == pytest.approx(1e-4)
    assert cfg.train.clip_grad.enabled and cfg.train.clip_grad.max_norm == pytest.approx(0.1)
    assert cfg.dataloader.train.total_batch_size == batch
    assert _sel(cfg, "train.total_batch_size") == batch
    assert cfg.model.decoder.num_queries == queries
    # the head, matcher and criterion agree through interpolation
    assert _sel(cfg, "model.head.subject_class") is subject_class
    assert _sel(cfg, "model.criterion.subject_class") is subject_class
    assert _sel(cfg, "model.criterion.matcher.subject_class") is subject_class
    assert (cfg.model.criterion.use_rql, cfg.model.criterion.use_rpl) == (rql, rpl)
    assert cfg.dataloader.train.dataset.names == train_set
    assert cfg.dataloader.test.dataset.names == test_set
    assert cfg.dataloader.train.dataset.filter_no_relations is True
    assert cfg.dataloader.train.mapper.max_relations == 100
    bb = os.path.basename(rel_path).split("_")[2]
    if bb == "r50":
        assert cfg.model.backbone.depth == 50 and cfg.model.position_embedding.offset == 0.0
    else:
        assert cfg.model.backbone.drop_path_rate == {"swint": 0.2, "swinl": 0.5}[bb]
        assert list(cfg.model.backbone.depths) == {"swint": [2, 2, 6, 2], "swinl": [2, 2, 18, 2]}[bb]
        assert cfg.model.position_embedding.offset == -0.5
        assert list(cfg.model.neck.in_channels) == {"swint": [192, 384, 768], "swinl": [384, 768, 1536]}[bb]
    family = rel_path.split("/")[0]
    if family == "pretrain":
        lse = _sel(cfg, "model.label_sequence_builder")
        assert (lse.mode, lse.num_labels, lse.sampling) == ("pretraining", 500, "freq")
        assert lse.metadata.name == train_set
        assert cfg.train.eval_period == 0  # the official pre-training does not evaluate
    else:
        assert _sel(cfg, "model.label_sequence_builder") is None
        assert cfg.model.metadata_dataset == test_set
        # 200-query pre-trained weights: the first rows are kept for 128-query models (official)
        assert cfg.train.truncate_queries is (queries == 128)
    if "uc_" in rel_path:
        assert cfg.dataloader.evaluator.zero_shot is True
    if family == "oi":
        assert cfg.model.postprocessor._target_.__name__ == "SGGPostProcessor"
    else:
        assert cfg.model.postprocessor.zero_shot_subject_filter is (family == "pretrain")


@pytest.mark.parametrize("rel_path", NF_ZERO_SHOT)
def test_nf_zero_shot_is_the_pretrained_model_with_the_subject_filter(rel_path):
    cfg = _load(rel_path)
    assert cfg.model.decoder.num_queries == 200
    assert _sel(cfg, "model.head.subject_class") is True
    assert cfg.model.postprocessor.zero_shot_subject_filter is True
    assert cfg.dataloader.test.dataset.names == "hico_det_test"
    assert cfg.dataloader.test.batch_size == 16
    assert cfg.train.truncate_queries is False
    assert cfg.train.init_checkpoint.endswith("_pretrain.pth")


def test_schedule_drops_the_lr_at_the_official_epoch():
    cfg = _load("hico/rlipv2_parseda_r50_hico.py")
    cfg.train.dataset_size = 37_536  # HICO-DET training images with relations
    per_epoch = 37_536 // 64
    assert cfg.train.iters_per_epoch == per_epoch and cfg.train.max_iter == 20 * per_epoch
    sched = instantiate(cfg.lr_multiplier)
    it = 15 * per_epoch
    assert sched((it - 1) / cfg.train.max_iter) == pytest.approx(1.0)
    assert sched(it / cfg.train.max_iter) == pytest.approx(0.1)
    few = _load("hico/rlipv2_parseda_r50_hico_10pct.py")
    few.train.dataset_size = 3_754
    assert few.train.max_iter == 10 * (3_754 // 32)


# ------------------------------------------------------------------------------ model instantiation
@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    from rlipv2.utils.testing import TINY_LABELS, hico_label_texts, save_tiny_text_encoder

    objs, verbs = hico_label_texts()
    words = list(TINY_LABELS) + objs + verbs + ["man", "horse", "riding", "next to", "on", "table", "wearing", "hat"]
    return save_tiny_text_encoder(tmp_path_factory.mktemp("tiny_text"), words)


def _instantiate_model(cfg, text_dir):
    cfg.model.text_encoder.name_or_path = text_dir
    cfg.model.label_sequence_builder = None  # needs the pre-training data's metadata (tested below)
    if cfg.model.backbone.get("depths") == [2, 2, 18, 2]:
        cfg.model.backbone.depths = [2, 2, 2, 2]  # Swin-L widths with fewer blocks: keeps the CPU test light
    return instantiate(cfg.model)


def _check_model(model, cfg):
    from rlipv2.modeling import RLIPv2

    assert isinstance(model, RLIPv2)
    assert model.num_queries == cfg.model.decoder.num_queries
    assert model.decoder.verb_tgt_embed.weight.shape[0] == cfg.model.decoder.num_queries
    assert model.head.subject_class is _sel(cfg, "model.head.subject_class")
    assert (model.criterion.use_rql, model.criterion.use_rpl) == (cfg.model.criterion.use_rql,
                                                                  cfg.model.criterion.use_rpl)
    assert model.text_encoder.output_dim == 768
    name = type(model.backbone).__name__
    assert name == ("FrozenNormSwinTransformer" if "drop_path_rate" in cfg.model.backbone else "ResNet")


FAST_MODELS = ["hico/rlipv2_parseda_r50_hico.py", "hico/rlipv2_parseda_swint_hico_10pct.py",
               "oi/rlipv2_parseda_r50_oi.py"]


@pytest.mark.parametrize("rel_path", FAST_MODELS)
def test_models_instantiate(rel_path, text_dir):
    cfg = _load(rel_path)
    model = _instantiate_model(cfg, text_dir)
    _check_model(model, cfg)
    if "oi/" in rel_path:
        assert type(model.postprocessor).__name__ == "SGGPostProcessor"
    else:
        assert model.postprocessor.zero_shot_subject_filter is False


@pytest.mark.slow
@pytest.mark.parametrize("rel_path", [os.path.relpath(p, PROJECT_DIR) for p in EXPERIMENTS
                                      if os.path.relpath(p, PROJECT_DIR) not in FAST_MODELS])
def test_every_model_instantiates(rel_path, text_dir):
    cfg = _load(rel_path)
    _check_model(_instantiate_model(cfg, text_dir), cfg)


# ------------------------------------------------------------------- data nodes on fixture datasets
def _write_image(path, w=96, h=72, seed=0):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)).save(path)


def _write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


@pytest.fixture(scope="module")
def fixture_datasets(tmp_path_factory):
    """HICO-DET-format train/test sets and a VG + pseudo-label mixture, registered under test names."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from rlipv2.data import register_mixture, register_relation_dataset

    root = tmp_path_factory.mktemp("cfg_data")
    hico = []
    for i in range(4):
        name = f"HICO_train2015_{i:08d}.jpg"
        _write_image(str(root / "hico" / name), seed=i)
        hico.append({"file_name": name,
                     "annotations": [{"bbox": [2, 3, 40, 60], "category_id": 1},
                                     {"bbox": [30, 10, 90, 70], "category_id": 18 if i % 2 else 47}],
                     "hoi_annotation": [{"subject_id": 0, "object_id": 1, "category_id": 58 if i % 2 else 37}]})
    hico_json = _write_json(root / "hico" / "ann.json", hico)
    vg = []
    for i in range(4):
        _write_image(str(root / "vg" / f"{i + 1}.jpg"), seed=10 + i)
        other = "horse" if i % 2 else "table"
        vg.append({"image_id": i + 1,
                   "objects": [{"object_id": 1, "x": 2, "y": 3, "w": 30, "h": 50, "names": ["man"]},
                               {"object_id": 2, "x": 40, "y": 10, "w": 40, "h": 50, "names": [other]},
                               {"object_id": 3, "x": 5, "y": 5, "w": 10, "h": 10, "names": ["hat"]}],
                   "relationships": [{"relationship_id": 1, "predicate": "riding" if i % 2 else "next to",
                                      "subject_id": 1, "object_id": 2},
                                     {"relationship_id": 2, "predicate": "wearing", "subject_id": 1, "object_id": 3}]})
    vg_json = _write_json(root / "vg" / "sg.json", vg)
    vcoco = [{"file_name": name, "annotations": [{"bbox": [2, 3, 40, 60], "category_id": 1},
                                                 {"bbox": [30, 10, 90, 70], "category_id": 3}],
              "hoi_annotation": [{"subject_id": 0, "object_id": -1, "category_id": 1},
                                 {"subject_id": 0, "object_id": 1, "category_id": 0}]}
             for name in (h["file_name"] for h in hico)]
    vcoco_json = _write_json(root / "hico" / "vcoco.json", vcoco)
    oi_all = _write_json(root / "oi" / "categories_dict.json", {"obj": ["Zebra", "Man", "Guitar", "Car"], "rel": []})
    oi_cats = _write_json(root / "oi" / "cats.json", {"obj": ["Man", "Guitar", "Car"], "rel": ["plays", "holds", "at"]})
    oi = [{"file_name": h["file_name"],
           "annotations": [{"bbox": [2, 3, 40, 60], "category_id": 1}, {"bbox": [30, 10, 90, 70], "category_id": 2}],
           "rel_annotations": [{"subject_id": 0, "object_id": 1, "category_id": i % 2}]} for i, h in enumerate(hico)]
    oi_json = _write_json(root / "oi" / "ann.json", oi)
    names = {"hico_train": "cfgtest_hico_train", "hico_test": "cfgtest_hico_test", "vg": "cfgtest_vg",
             "vg2": "cfgtest_vg2", "mix": "cfgtest_vg_mix", "vcoco": "cfgtest_vcoco", "oi": "cfgtest_oi"}
    register_relation_dataset(names["hico_train"], hico_json, str(root / "hico"), format="hico")
    register_relation_dataset(names["hico_test"], hico_json, str(root / "hico"), format="hico")
    register_relation_dataset(names["vg"], vg_json, str(root / "vg"), format="vg")
    register_relation_dataset(names["vg2"], vg_json, str(root / "vg"), format="vg")
    register_mixture(names["mix"], [names["vg"], names["vg2"]])
    register_relation_dataset(names["vcoco"], vcoco_json, str(root / "hico"), format="vcoco")
    register_relation_dataset(names["oi"], oi_json, str(root / "hico"), format="oi", categories_file=oi_cats,
                              all_categories_file=oi_all)
    yield names
    for n in names.values():
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)


SMALL_MAPPER = dict(min_sizes=(64, 72), max_size=128, crop_resize_sizes=(64,), crop_size=(48, 64),
                    test_min_size=64, test_max_size=128)


def _shrink_for_cpu(cfg, text_dir, train_set, test_set):
    """Keep the experiment's wiring (criterion, label sequence, vocabulary, post-processing), make it tiny."""
    tiny = LazyConfig.load(os.path.join(COMMON_DIR, "models", "rlipv2_parseda_tiny.py")).model
    m = cfg.model
    m.backbone = tiny.backbone
    m.in_features = tiny.in_features
    m.neck.in_channels = tiny.neck.in_channels
    m.position_embedding = tiny.position_embedding
    m.text_encoder.name_or_path = text_dir
    m.text_encoder.output_dim = tiny.text_encoder.output_dim
    m.encoder.fusion_embed_dim = tiny.encoder.fusion_embed_dim
    for key in ("d_model", "d_ffn"):
        m.decoder[key] = tiny.decoder[key]
    m.decoder.num_queries = 8
    cfg.dataloader.train.dataset.names = train_set
    cfg.dataloader.test.dataset.names = test_set
    cfg.dataloader.train.total_batch_size = 2
    cfg.dataloader.train.num_workers = 0
    cfg.dataloader.test.num_workers = 0
    cfg.dataloader.test.batch_size = 1
    for split, is_train in (("train", True), ("test", False)):
        for k, v in SMALL_MAPPER.items():
            if is_train != k.startswith("test_"):
                cfg.dataloader[split].mapper[k] = v


def _train_step(cfg):
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    loader = instantiate(cfg.dataloader.train)
    batch = next(iter(loader))
    assert len(batch) == 2 and all(b["image"].shape[-1] <= 128 for b in batch)
    model.train()
    losses = model(batch)
    assert {"loss_obj_ce", "loss_verb_ce", "loss_sub_bbox", "loss_obj_giou"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    return model, batch


def test_hico_data_nodes_train_and_evaluate_on_fixtures(fixture_datasets, text_dir, tmp_path):
    from detectron2.evaluation import inference_on_dataset

    cfg = _load("hico/rlipv2_parseda_r50_hico_10pct.py")
    _shrink_for_cpu(cfg, text_dir, fixture_datasets["hico_train"], fixture_datasets["hico_test"])
    cfg.train.output_dir = str(tmp_path)
    model, _ = _train_step(cfg)
    # fine-tuning: the fixed HICO-DET vocabulary of the test set's metadata (80 objects, 117 verbs)
    objs, rels = model.training_label_sequence([])
    assert (len(objs), len(rels)) == (80, 117)
    evaluator = instantiate(cfg.dataloader.evaluator)
    assert evaluator.output_dir == str(tmp_path) and evaluator.nms["nms"] is True
    results = inference_on_dataset(model.eval(), instantiate(cfg.dataloader.test), evaluator)
    hoi = results["hoi"]
    assert {"mAP", "mAP_rare", "mAP_non_rare"} <= set(hoi)
    assert math.isfinite(hoi["mAP"]) and 0 <= hoi["mAP"] <= 100
    assert hoi["num_classes"] == 2  # the two (verb, object) triplets of the fixture's test set
    assert os.path.exists(tmp_path / "hico_predictions.npz")


def test_pretraining_label_sequence_node_on_a_fixture_mixture(fixture_datasets, text_dir):
    from detectron2.data import MetadataCatalog

    cfg = _load("pretrain/rlipv2_parseda_r50_vgcoco.py")
    _shrink_for_cpu(cfg, text_dir, fixture_datasets["mix"], fixture_datasets["hico_test"])
    builder = instantiate(cfg.dataloader.label_sequence_builder)
    meta = MetadataCatalog.get(fixture_datasets["mix"])
    assert builder.mode == "pretraining" and builder.num_labels == 500 and builder.sampling == "freq"
    assert builder.object_labels == list(meta.thing_classes) and "horse" in builder.object_labels
    assert builder.num_object_target == 333 and builder.num_relation_target == 167
    model, batch = _train_step(cfg)
    assert model.label_sequence_builder is not None
    objs, rels = model.training_label_sequence(batch)
    # the batch's labels, extended with negatives from the (tiny) mixture vocabulary
    batch_rels = {t for b in batch for t in b["predicate_texts"]}
    assert batch_rels <= set(rels) and set(rels) <= set(meta.predicate_classes)
    assert len(objs) == len(meta.thing_classes)  # vocabulary smaller than 333: every object label is used


@pytest.mark.slow
def test_vcoco_and_open_images_data_nodes_on_fixtures(fixture_datasets, text_dir, tmp_path):
    from detectron2.evaluation import inference_on_dataset

    cfg = _load("vcoco/rlipv2_parseda_r50_vcoco.py")
    _shrink_for_cpu(cfg, text_dir, fixture_datasets["vcoco"], fixture_datasets["vcoco"])
    model, batch = _train_step(cfg)  # the evaluator needs the official V-COCO files: not built here
    assert all((b["relations"][:, 1] == -1).any() for b in batch)  # V-COCO's "no object" roles
    objs, rels = model.training_label_sequence(batch)
    assert len(rels) == 29 and objs[-1].startswith("missing")

    cfg = _load("oi/rlipv2_parseda_r50_oi.py")
    _shrink_for_cpu(cfg, text_dir, fixture_datasets["oi"], fixture_datasets["oi"])
    cfg.train.output_dir = str(tmp_path)
    model, _ = _train_step(cfg)
    results = inference_on_dataset(model.eval(), instantiate(cfg.dataloader.test),
                                   instantiate(cfg.dataloader.evaluator))
    assert {"R@50", "wmAP_rel", "wmAP_phr", "score_wtd"} <= set(results["oi"])
    assert os.path.exists(tmp_path / "oi_results.json")
