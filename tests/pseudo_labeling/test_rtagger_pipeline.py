"""End to end with the real (tiny, random) R-Tagger: synthetic world -> template captions from its known
relations -> parse -> match -> tag with RTagger -> VG-style file -> VG-format loader -> label sequences ->
one tagger training step on the pseudo labels."""
import json
import os

import pytest
import torch

pytest.importorskip("sng_parser", reason="SceneGraphParser (scenegraphparser) is not installed")

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "common", "models")
# caption phrase of each synthetic predicate ("a person riding a horse.")
PHRASES = {"ride": "riding", "hold": "holding", "kick": "kicking", "carry": "carrying", "sit on": "sitting on",
           "look at": "looking at", "next to": "next to"}


@pytest.fixture(scope="module")
def tiny_text_dir(tmp_path_factory):
    from rlipv2.data.synthetic import OBJECTS
    from rlipv2.utils.testing import save_tiny_text_encoder

    texts = OBJECTS + ["no objects"] + list(PHRASES.values())
    return save_tiny_text_encoder(tmp_path_factory.mktemp("tiny_roberta"), texts)


def _tiny_tagger(text_dir, **overrides):
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load(os.path.join(CONFIG_DIR, "rtagger_tiny.py"))
    cfg.model.text_encoder.name_or_path = text_dir
    cfg.model.head.prior_prob = 0.5  # untrained: scores around 0.5 rather than 0.01, so some pass 0.2
    for k, v in overrides.items():
        cfg.model[k] = v
    torch.manual_seed(0)
    return instantiate(cfg.model)


def _coco_from_world(world: str, out_dir):
    """The synthetic VG split as a COCO-format detection file, its known relations and paraphrases."""
    from rlipv2.data.synthetic import OBJECTS

    entries = json.load(open(os.path.join(world, "annotations", "vg_scene_graphs.json")))
    images, anns, known = [], [], {}
    for e in entries:
        images.append({"id": e["image_id"], "file_name": f"{e['image_id']}.jpg", "width": e["width"],
                       "height": e["height"]})
        names = {}
        for o in e["objects"]:
            names[o["object_id"]] = o["names"]
            anns.append({"id": len(anns) + 1, "image_id": e["image_id"], "category_id": OBJECTS.index(o["names"]) + 1,
                         "bbox": [o["x"], o["y"], o["w"], o["h"]], "iscrowd": 0, "area": o["w"] * o["h"]})
        known[e["image_id"]] = [[names[r["subject_id"]], PHRASES[r["predicate"]], names[r["object_id"]]]
                                for r in e["relationships"]]
    det = out_dir / "detections.json"
    det.write_text(json.dumps({"images": images, "annotations": anns,
                               "categories": [{"id": k + 1, "name": n} for k, n in enumerate(OBJECTS)]}))
    para = out_dir / "paraphrases.json"
    para.write_text(json.dumps({n: [n, "man", "woman"] if n == "person" else [n] for n in OBJECTS}))
    return str(det), str(para), known


def test_rtagger_pipeline_end_to_end(tiny_text_dir, tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from rlipv2.data import LabelSequenceBuilder, RelationDatasetMapper, SyntheticWorldConfig, ensure_world
    from rlipv2.data.datasets.visual_genome import register_pseudo_labels
    from rlipv2.pseudo_labeling import PipelineConfig, PseudoLabelPipeline
    from rlipv2.pseudo_labeling.captions import TemplateCaptioner
    from rlipv2.pseudo_labeling.tagging import ModuleRelationTagger

    world = ensure_world(str(tmp_path / "world"),
                         SyntheticWorldConfig(seed=5, image_size=96, num_train=1, num_test=1, num_vg=4))
    det, para, known = _coco_from_world(world, tmp_path)
    assert sum(len(v) for v in known.values()) >= 3
    out = tmp_path / "pseudo"
    cfg = PipelineConfig(detection_json=det, image_root=os.path.join(world, "images", "vg"), output_dir=str(out),
                         captioner="TemplateCaptioner", paraphrases=para, dataset_name="synthetic", shard_size=2,
                         group_size=8,  # the tiny tagger has 8 pair slots
                         num_workers=0, progress=False)
    tagger = ModuleRelationTagger(_tiny_tagger(tiny_text_dir), min_size=96, max_size=128)
    summary = PseudoLabelPipeline(cfg, captioner=TemplateCaptioner(known), tagger=tagger, rank=0, world_size=1,
                                  barrier=lambda: None).run()
    assert summary["stages"]["match"]["candidate_pairs"] > 0

    data = json.loads((out / "pseudo_relations.json").read_text())
    assert len(data) == 4
    names = {o["object_id"]: o["names"] for e in data for o in e["objects"]}
    allowed_pairs = {(s, o) for v in known.values() for s, _, o in v}
    rels = [r for e in data for r in e["relationships"]]
    assert rels, "the tiny tagger kept no relation"
    for r in rels:
        assert r["predicate"] in PHRASES.values() and 0.05 < r["confidence"] < 1
        assert (names[r["subject_id"]], names[r["object_id"]]) in allowed_pairs

    # the VG-format loader reads it (confidence >= 0.2), the label-sequence builder uses it
    name = "rtagger_e2e_pseudo_train"
    register_pseudo_labels(name, str(out / "pseudo_relations.json"), os.path.join(world, "images", "vg"),
                           source="coco2017", relation_threshold=0.2)
    try:
        dicts = DatasetCatalog.get(name)
        kept = [r for d in dicts for r in d["relations"]]
        assert len(kept) == sum(r["confidence"] >= 0.2 for r in rels) > 0
        assert all(r["confidence"] >= 0.2 for r in kept)
        md = MetadataCatalog.get(name)
        assert set(md.predicate_classes) <= set(PHRASES.values())
        mapper = RelationDatasetMapper(True, dataset_name=name, min_sizes=(96,), max_size=128, random_crop=False)
        batch = [mapper(d) for d in dicts if d["relations"]][:2]
        builder = LabelSequenceBuilder.from_metadata(md, mode="pretraining", num_labels=9, seed=0)
        seq = builder(batch, seed=0)
        for x, t in zip(batch, seq.targets):
            got = [seq.relation_labels[p] for p in t["relations"][:, 2].tolist()]
            assert got == x["predicate_texts"]
            assert [seq.object_labels[i] for i in t["labels"].tolist()] == x["object_texts"]

        # and the tagger trains on the pseudo labels it produced
        model = _tiny_tagger(tiny_text_dir, label_sequence_builder=builder, pair_seed=0).train()
        losses = model(batch)
        total = sum(losses.values())
        assert torch.isfinite(total) and total > 0
        total.backward()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_lazy_config_tagger_builds_rtagger_from_config_and_weights(tiny_text_dir, tmp_path):
    """``--tagger LazyConfigTagger --tagger-config rtagger_tiny.py --tagger-weights W``: the saved model's scores."""
    from rlipv2.modeling import RTagger
    from rlipv2.pseudo_labeling.tagging import ModuleRelationTagger, build_relation_tagger

    model = _tiny_tagger(tiny_text_dir)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "bias_pred_a" in n or "verb_tgt" in n:
                p.normal_()
    weights = tmp_path / "rtagger.pth"
    torch.save({"model": model.state_dict()}, weights)
    tagger = build_relation_tagger("LazyConfigTagger", config_file=os.path.join(CONFIG_DIR, "rtagger_tiny.py"),
                                   weights=str(weights), min_size=96, max_size=128,
                                   overrides=[f"model.text_encoder.name_or_path={tiny_text_dir}",
                                              "model.head.prior_prob=0.5"])
    assert isinstance(tagger.module, RTagger)
    img = torch.randint(0, 256, (3, 80, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[0.0, 0.0, 40.0, 60.0], [30.0, 20.0, 90.0, 70.0]])
    args = (img, boxes, torch.tensor([0, 3]), ["person", "ball", "bicycle", "horse"], [torch.tensor([[0, 1]])],
            ["riding", "next to"])
    expected = ModuleRelationTagger(model, min_size=96, max_size=128).tag(*args)
    torch.testing.assert_close(tagger.tag(*args)[0], expected[0])


def test_cli_with_lazy_config_rtagger(tiny_text_dir, tmp_path):
    """tools/pseudo_label.py --tagger LazyConfigTagger --tagger-config rtagger_tiny.py, template captions."""
    import subprocess
    import sys

    from rlipv2.data import SyntheticWorldConfig, ensure_world

    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    world = ensure_world(str(tmp_path / "world"),
                         SyntheticWorldConfig(seed=5, image_size=96, num_train=1, num_test=1, num_vg=4))
    det, para, known = _coco_from_world(world, tmp_path)
    rel_file = tmp_path / "relations.json"
    rel_file.write_text(json.dumps({str(k): v for k, v in known.items()}))
    overrides = json.dumps([f"model.text_encoder.name_or_path={tiny_text_dir}", "model.head.prior_prob=0.5"])
    cmd = [sys.executable, os.path.join(repo, "tools", "pseudo_label.py"), "--detection-json", det,
           "--image-root", os.path.join(world, "images", "vg"), "--template-relations", str(rel_file),
           "--paraphrases", para, "--output-dir", str(tmp_path / "out"), "--shard-size", "2", "--group-size", "8",
           "--num-workers", "0", "--no-progress", "--dataset-name", "synthetic",
           "--tagger", "LazyConfigTagger", "--tagger-config", os.path.join(CONFIG_DIR, "rtagger_tiny.py"),
           "--tagger-opt", f"overrides={overrides}", "--tagger-opt", "min_size=96", "--tagger-opt", "max_size=128"]
    env = dict(os.environ, PYTHONPATH=repo, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=repo)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "pseudo_relations.json").read_text())
    assert len(data) == 4
    rels = [r for e in data for r in e["relationships"]]
    assert rels and all(r["predicate"] in PHRASES.values() for r in rels)
