"""The bad-input corpus: every loader, CLI and evaluator given broken input fails clearly, or skips as documented.

Each case asserts that the error names the file / record / field at fault; nothing may hang (CLI runs have
timeouts), crash the interpreter, or quietly produce a result from broken input. Cases:

* annotation loaders (HICO-DET, Visual Genome / pseudo-labels, Open Images): truncated and malformed JSON,
  boxes outside the image, NaN boxes and confidences, out-of-range relation indices, corrupt JPEGs;
  plus a hypothesis fuzz test: any JSON either loads into valid dataset dicts or raises RelationDataError;
* the training mapper, the predictor and the demo CLI on a corrupt JPEG;
* evaluators: NaN scores and out-of-range pair indices into HICOEvaluator / SGGEvaluator, truncated
  files into the HICO CLI, a crafted pickle into the V-COCO CLI;
* the op: wrong tensor shapes into ms_deform_attn and triplet_nms;
* checkpoints: a wrong architecture (predictor, train_net --eval-only) and a crafted pickle that would run
  code, refused at every entry point (converter, train_net init_checkpoint, predictor, pseudo-label tagger).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "data"))
sys.path.insert(0, str(REPO / "tests" / "engine"))

from engine_toys import ToyRelationModel, write_toy_config  # noqa: E402
from relation_fixtures import hico_entries, vg_entries, write_image  # noqa: E402

from rlipv2.data import RelationDataError, RelationDatasetMapper  # noqa: E402
from rlipv2.data.datasets.hoi_format import load_hoi_json  # noqa: E402
from rlipv2.data.datasets.visual_genome import load_vg_json  # noqa: E402
from rlipv2.engine.checkpoint import CheckpointMismatchError, UnsafeCheckpointError  # noqa: E402

TIMEOUT = 240  # seconds for any subprocess: a hang fails the test instead of blocking the suite
HICO_OBJ = {1: 0, 18: 1, 37: 2, 90: 3}
HICO_VERB = {i: i - 1 for i in range(1, 118)}


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests" / "engine")]),
                OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def _run(args, cwd, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=str(cwd), env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _dump(path: Path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def _hico(entries, tmp_path, read_sizes=False, name="hico.json"):
    return load_hoi_json(_dump(tmp_path / name, entries), str(tmp_path), object_id_map=HICO_OBJ,
                         predicate_id_map=HICO_VERB, read_sizes=read_sizes)


def _sized_hico():
    e = hico_entries()
    for x in e:
        x["height"], x["width"] = 48, 64
    return e


def _oi_entries():
    """Open Images SGG format: contiguous object ids, ``rel_annotations``."""
    return [{"file_name": "oi_1.jpg", "height": 48, "width": 64,
             "annotations": [{"bbox": [1, 2, 30, 40], "category_id": 0}, {"bbox": [20, 10, 60, 45], "category_id": 3}],
             "rel_annotations": [{"subject_id": 0, "object_id": 1, "category_id": 2}]}]


def _oi(entries, tmp_path):
    return load_hoi_json(_dump(tmp_path / "oi.json", entries), str(tmp_path), object_id_map={i: i for i in range(5)},
                         predicate_id_map={i: i for i in range(4)}, relation_key="rel_annotations", read_sizes=False)


def _vg(entries, tmp_path, **kw):
    return load_vg_json(_dump(tmp_path / "vg.json", entries), str(tmp_path), read_sizes=False, **kw)[0]


# ----------------------------------------------------------------------------------- annotation loaders
LOADERS = {"hico": (_sized_hico, _hico), "vg": (vg_entries, _vg), "oi": (_oi_entries, _oi)}


@pytest.mark.parametrize("fmt", sorted(LOADERS))
@pytest.mark.parametrize("cut", ["truncated", "malformed", "not_a_list"])
def test_truncated_and_malformed_json(tmp_path, fmt, cut):
    make, _ = LOADERS[fmt]
    text = json.dumps(make())
    text = {"truncated": text[: len(text) // 2], "malformed": text.replace(":", "=", 1),
            "not_a_list": '{"images": 3}'}[cut]
    path = tmp_path / f"{fmt}.json"
    path.write_text(text)
    with pytest.raises(RelationDataError) as ei:
        if fmt == "vg":
            load_vg_json(str(path), str(tmp_path), read_sizes=False)
        else:
            load_hoi_json(str(path), str(tmp_path), object_id_map=HICO_OBJ, predicate_id_map=HICO_VERB,
                          relation_key="rel_annotations" if fmt == "oi" else "hoi_annotation", read_sizes=False)
    assert str(path) in str(ei.value)
    assert ("malformed JSON" if cut != "not_a_list" else "expected a JSON list") in str(ei.value)


def _set(path):
    def mutate(e, value):
        obj = e
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
        return e
    return mutate


# (format, path to the field, bad value, field named in the error, words in the error)
FIELD_CASES = [
    ("hico", (0, "annotations", 1, "bbox"), [20, 10, 200, 45], "annotations[1].bbox", "outside"),
    ("hico", (0, "annotations", 0, "bbox"), [1, 2, float("nan"), 40], "annotations[0].bbox", "non-finite"),
    ("hico", (0, "hoi_annotation", 1, "object_id"), 7, "hoi_annotation[1].object_id", "out of range"),
    ("hico", (1, "hoi_annotation", 0, "subject_id"), -1, "hoi_annotation[0].subject_id", "out of range"),
    ("hico", (0, "hoi_annotation", 0, "category_id"), [58], "hoi_annotation[0].category_id", "must be an integer"),
    ("hico", (0, "hoi_annotation", 0, "category_id"), 500, "hoi_annotation[0].category_id", "unknown predicate"),
    ("hico", (0, "height"), "tall", "height", "positive integer"),
    ("hico", (0, "hoi_annotation", 0, "confidence"), float("nan"), "hoi_annotation[0].confidence", "finite"),
    ("oi", (0, "annotations", 1, "bbox"), [20, 10, 90, 45], "annotations[1].bbox", "outside"),
    ("oi", (0, "rel_annotations", 0, "object_id"), 2, "rel_annotations[0].object_id", "out of range"),
    ("oi", (0, "annotations", 0, "category_id"), {"id": 0}, "annotations[0].category_id", "must be an integer"),
    ("oi", (0, "annotations", 0, "category_id"), 7, "annotations[0].category_id", "unknown object"),
    ("vg", (0, "relationships", 0, "object_id"), 999, "relationships[0].object_id", "not among"),
    ("vg", (0, "relationships", 0, "subject_id"), [100], "relationships[0].subject_id", "int or a string"),
    ("vg", (0, "objects", 0, "w"), float("nan"), "objects[0].w", "finite"),
    ("vg", (0, "relationships", 0, "confidence"), float("nan"), "relationships[0].confidence", "finite"),
    ("vg", (0, "objects", 1, "object_id"), {"a": 1}, "objects[1].object_id", "int or a string"),
]


@pytest.mark.parametrize("fmt,path,value,field,words", FIELD_CASES, ids=[f"{c[0]}-{c[3]}-{c[4]}" for c in FIELD_CASES])
def test_bad_field_names_file_record_and_field(tmp_path, fmt, path, value, field, words):
    make, load = LOADERS[fmt]
    entries = _set(path)(make(), value)
    if fmt == "vg":  # VG boxes are checked against the image size given in the entry
        for e in entries:
            e["height"], e["width"] = 48, 64
    with pytest.raises(RelationDataError) as ei:
        load(entries, tmp_path)
    msg = str(ei.value)
    assert f"{fmt}.json" in msg and field in msg and words in msg, msg
    assert ei.value.problem.image is not None  # the record is named


def test_vg_box_outside_the_image(tmp_path):
    e = vg_entries()
    e[0]["height"], e[0]["width"] = 48, 64
    e[1]["height"], e[1]["width"] = 48, 64
    e[0]["objects"][1]["w"] = 300
    with pytest.raises(RelationDataError, match=r"vg.json: image 7: field 'objects\[1\].bbox'.*outside the 64x48"):
        _vg(e, tmp_path)


def test_corrupt_and_truncated_jpegs_in_the_loader(tmp_path):
    e = hico_entries()
    write_image(str(tmp_path / e[0]["file_name"]))
    good = (tmp_path / "good.jpg")
    write_image(str(good))
    (tmp_path / e[1]["file_name"]).write_bytes(good.read_bytes()[:20])  # truncated inside the header
    with pytest.raises(RelationDataError, match=r"HICO_train2015_00000002.jpg.*file_name.*cannot read"):
        _hico(e, tmp_path, read_sizes=True)


def test_corrupt_jpeg_in_the_mapper_raises_or_skips(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG body")
    d = {"file_name": str(bad), "image_id": 5, "height": 48, "width": 64, "dataset_name": "hico_det_train",
         "annotations": [{"bbox": [1, 2, 30, 40], "bbox_mode": 0, "category_id": 0}],
         "relations": [{"subject": 0, "object": 0, "predicate": 0}]}
    with pytest.raises(RelationDataError, match=r"bad.jpg: image 5: field 'file_name'"):
        RelationDatasetMapper(is_train=True)(dict(d))
    assert RelationDatasetMapper(is_train=True, skip_bad_records=True)(dict(d)) is None  # documented skip


# ------------------------------------------------------------------------------------------- fuzzing
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(), st.text(max_size=4))
_json = st.recursive(_leaf, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=3), c,
                                                                                          max_size=3)), max_leaves=6)


def _paths(o, pre=()):
    yield pre
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _paths(v, pre + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _paths(v, pre + (i,))


@st.composite
def _mutated(draw, make):
    """A valid annotation file with 1-3 fields replaced by arbitrary JSON values or deleted."""
    o = make()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(o))))
        if not path:
            return draw(_json)
        parent = o
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.booleans()):
            parent.pop(path[-1])
        else:
            parent[path[-1]] = draw(_json)
    return o


def _check_dicts(dicts):
    for d in dicts:
        assert isinstance(d["file_name"], str) and isinstance(d["annotations"], list)
        if "height" in d:
            assert d["height"] > 0 and d["width"] > 0
        for a in d["annotations"]:
            assert len(a["bbox"]) == 4 and all(math.isfinite(v) for v in a["bbox"])
            assert isinstance(a["category_id"], int)
        for r in d["relations"]:
            n = len(d["annotations"])
            assert 0 <= r["subject"] < n and -1 <= r["object"] < n and math.isfinite(r["confidence"])


_FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.mark.parametrize("fmt", sorted(LOADERS))
def test_fuzz_annotation_loaders_load_valid_dicts_or_raise_relation_data_error(tmp_path_factory, fmt):
    make, load = LOADERS[fmt]
    d = tmp_path_factory.mktemp(f"fuzz_{fmt}")

    @_FUZZ
    @given(_mutated(make))
    def check(entries):
        try:
            dicts = load(entries, d)
        except RelationDataError:
            return
        _check_dicts(dicts)

    check()


# ------------------------------------------------------------------------------------------ evaluators
def _hico_evaluator():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from rlipv2.evaluation import HICOEvaluator

    name = "bad_inputs_hico_tiny"
    if name not in DatasetCatalog.list():
        dicts = [{"file_name": "a.jpg", "image_id": 1, "height": 48, "width": 64,
                  "annotations": [{"bbox": [1, 2, 30, 40], "bbox_mode": 0, "category_id": 0},
                                  {"bbox": [20, 10, 60, 45], "bbox_mode": 0, "category_id": 1}],
                  "relations": [{"subject": 0, "object": 1, "predicate": 0}]}]
        DatasetCatalog.register(name, lambda: dicts)
        MetadataCatalog.get(name).set(thing_classes=["person", "dog"], predicate_classes=["walk", "feed"],
                                      correct_mat=np.ones((2, 2)))
    return HICOEvaluator(name)


def _hico_output(scores=None, subject=(0,), obj=(1,)):
    from detectron2.structures import Boxes, Instances

    inst = Instances((48, 64), pred_boxes=Boxes(torch.tensor([[1.0, 2, 30, 40], [20, 10, 60, 45]])),
                     pred_classes=torch.tensor([0, 1]), scores=torch.tensor([1.0, 0.9]))
    rs = torch.tensor([[0.8, 0.1]]) if scores is None else scores
    return [{"instances": inst, "pairs": {"subject": torch.tensor(subject), "object": torch.tensor(obj),
                                          "relation_scores": rs}}]


@pytest.mark.parametrize("kw,match", [
    (dict(scores=torch.tensor([[float("nan"), 0.1]])), "image 1.*NaN"),
    (dict(scores=torch.tensor([[0.5, float("inf")]])), "image 1.*NaN or inf"),
    (dict(obj=(5,)), "image 1.*pair indices out of range"),
    (dict(scores=torch.tensor([[0.5, 0.1, 0.3]])), r"image 1.*relation_scores must be \(Q, 2\)"),
])
def test_hico_evaluator_refuses_bad_model_outputs(kw, match):
    ev = _hico_evaluator()
    ev.reset()
    with pytest.raises(ValueError, match=match):
        ev.process([{"image_id": 1, "file_name": "a.jpg", "height": 48, "width": 64}], _hico_output(**kw))
    ev.reset()
    ev.process([{"image_id": 1, "file_name": "a.jpg", "height": 48, "width": 64}], _hico_output())  # good: works
    assert ev.evaluate()["hoi"]["mAP"] == pytest.approx(1.0)  # the one GT triplet is found


def test_hico_cli_truncated_inputs_name_the_file(tmp_path):
    from rlipv2.evaluation.hico_io import METADATA_DIR

    gt = tmp_path / "test_hico.json"
    gt.write_text(json.dumps([{"file_name": "HICO_test2015_00000001.jpg", "annotations": []}])[:30])
    pred = tmp_path / "pred.npz"
    np.savez(pred, file_names=np.array(["HICO_test2015_00000001.jpg"]))
    pred.write_bytes(pred.read_bytes()[:40])
    args = ["-m", "rlipv2.evaluation.hico", "--gt", gt, "--pred", pred, "--correct-mat",
            METADATA_DIR / "corre_hico.npy"]
    # the predictions file is opened first (it may carry the protocol settings): named with its flag
    p = _run(args, REPO)
    assert p.returncode == 2 and "--pred" in p.stderr.splitlines()[-1] and "pred.npz" in p.stderr.splitlines()[-1], \
        p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    np.savez(pred, file_names=np.array(["HICO_test2015_00000001.jpg"]))
    p = _run(args, REPO)
    assert p.returncode == 2 and "test_hico.json" in p.stderr.splitlines()[-1], p.stderr[-2000:]
    assert "--gt" in p.stderr.splitlines()[-1] and "Traceback" not in p.stderr


def test_sgg_evaluator_refuses_nan_scores():
    from rlipv2.evaluation.sgg_evaluator import VGSGGEvaluator

    name = "bad_inputs_sgg_tiny"
    from detectron2.data import DatasetCatalog, MetadataCatalog
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [{"file_name": "a.jpg", "image_id": 1, "height": 48, "width": 64,
                                                "annotations": [], "relations": []}])
        MetadataCatalog.get(name).set(thing_classes=["person", "dog"], predicate_classes=["walk", "feed"])
    ev = VGSGGEvaluator(name)
    ev.reset()
    with pytest.raises(ValueError, match=r"model output for image 1 \(a.jpg\): relation_scores contain NaN"):
        ev.process([{"image_id": 1, "height": 48, "width": 64, "file_name": "a.jpg"}],
                   _hico_output(scores=torch.tensor([[float("nan"), 0.1]])))


# ------------------------------------------------------------------------------------------------ ops
def _msda_inputs():
    N, M, D, Lq, P = 1, 2, 4, 3, 2
    shapes = torch.tensor([[4, 4], [2, 2]])
    S = 20
    return dict(value=torch.rand(N, S, M, D), spatial_shapes=shapes, level_start_index=torch.tensor([0, 16]),
                sampling_locations=torch.rand(N, Lq, M, 2, P, 2), attention_weights=torch.rand(N, Lq, M, 2, P))


@pytest.mark.parametrize("name,bad,match", [
    ("value", torch.rand(1, 20, 8), "value must have shape"),
    ("value", torch.rand(1, 19, 2, 4), r"got S = 19"),
    ("sampling_locations", torch.rand(1, 3, 2, 3, 2, 2), "sampling_locations must have shape"),
    ("attention_weights", torch.rand(1, 3, 2, 2), "attention_weights must have shape"),
    ("spatial_shapes", torch.tensor([4, 4]), "spatial_shapes must have shape"),
])
def test_ms_deform_attn_wrong_shapes(name, bad, match):
    from rlipv2.layers import ms_deform_attn

    args = _msda_inputs()
    assert ms_deform_attn(**args).shape == (1, 3, 8)
    args[name] = bad
    with pytest.raises(ValueError, match=f"ms_deform_attn: .*{match}"):
        ms_deform_attn(**args)


def test_triplet_nms_wrong_shapes():
    from rlipv2.layers import triplet_nms

    b = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11]])
    with pytest.raises(ValueError, match=r"triplet_nms: obj_boxes must have shape \(N, 4\)"):
        triplet_nms(b, b[:, :3], torch.tensor([0.9, 0.8]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"triplet_nms: scores must have shape \(N,\)"):
        triplet_nms(b, b, torch.tensor([[0.9, 0.8]]), torch.tensor([0, 0]))


# -------------------------------------------------------------------------------------------- images
def test_predictor_on_a_corrupt_jpeg(tmp_path):
    from rlipv2.engine.predictor import RelationPredictor

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    pred = RelationPredictor(ToyRelationModel(), min_size=32, max_size=64, device="cpu")
    with pytest.raises(ValueError, match="cannot read image .*broken.jpg"):
        pred(str(bad), objects="person, horse, dog", relations="ride, feed")


@pytest.mark.slow  # a subprocess that imports the whole stack (~10 s)
def test_demo_cli_on_a_corrupt_jpeg(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    cfg = write_toy_config(tmp_path)
    p = _run([REPO / "tools" / "demo.py", "--config-file", cfg, "--input", bad, "--objects", "person, horse, dog",
              "--relations", "ride, feed", "--output", tmp_path / "out", "--device", "cpu"], tmp_path)
    assert p.returncode != 0 and "broken.jpg" in p.stderr.strip().splitlines()[-1], p.stderr[-3000:]


def test_pseudo_label_cli_truncated_detection_file(tmp_path):
    det = tmp_path / "instances.json"
    det.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "height"')
    p = _run([REPO / "tools" / "pseudo_label.py", "--detection-json", det, "--output-dir", tmp_path / "out",
              "--stages", "parse", "--no-progress"], tmp_path)
    assert p.returncode != 0 and "instances.json" in p.stderr.strip().splitlines()[-1], p.stderr[-3000:]


# --------------------------------------------------------------------------------------- checkpoints
def _toy_ckpt(path, **model_kw):
    torch.save({"model": ToyRelationModel(**model_kw).state_dict()}, str(path))
    return path


def test_wrong_architecture_checkpoint_predictor(tmp_path):
    from rlipv2.engine.predictor import RelationPredictor

    wrong = _toy_ckpt(tmp_path / "wide.pth", dim=16)
    with pytest.raises(CheckpointMismatchError, match=r"wide.pth.*(shape|tgt_embed)"):
        RelationPredictor(ToyRelationModel(), str(wrong), device="cpu")


@pytest.mark.slow  # a train_net subprocess (~10 s)
def test_wrong_architecture_checkpoint_train_net_eval_only(tmp_path):
    wrong = _toy_ckpt(tmp_path / "wide.pth", dim=16)
    cfg = write_toy_config(tmp_path)
    p = _run([REPO / "tools" / "lazyconfig_train_net.py", "--config-file", cfg, "--eval-only",
              f"train.init_checkpoint={wrong}", f"train.output_dir={tmp_path / 'ev'}"], tmp_path)
    assert p.returncode != 0 and "wide.pth" in p.stderr and "CheckpointMismatchError" in p.stderr, p.stderr[-3000:]


class _RunsCode:
    """Pickles into a call of os.system: loading it with plain pickle would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": ToyRelationModel().state_dict(), "args": _RunsCode(marker)}, str(path))
    yield path
    assert not marker.exists(), "the crafted pickle ran code"


REFUSED = "Refusing to load checkpoint"


def test_crafted_pickle_refused_by_the_converter(tmp_path, evil):
    p = _run([REPO / "tools" / "convert_official_checkpoint.py", evil, tmp_path / "out.pth"], tmp_path)
    assert p.returncode == 2 and REFUSED in p.stderr and "evil.pth" in p.stderr, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and not (tmp_path / "out.pth").exists()


@pytest.mark.slow  # a train_net subprocess (~10 s)
def test_crafted_pickle_refused_by_train_net_init_checkpoint(tmp_path, evil):
    cfg = write_toy_config(tmp_path)
    p = _run([REPO / "tools" / "lazyconfig_train_net.py", "--config-file", cfg, f"train.init_checkpoint={evil}",
              f"train.output_dir={tmp_path / 'tr'}", "train.max_iter=2"], tmp_path)
    assert p.returncode != 0 and REFUSED in p.stderr and "evil.pth" in p.stderr, p.stderr[-3000:]
    assert not (tmp_path / "tr" / "model_final.pth").exists()


def test_crafted_pickle_refused_by_the_predictor_and_the_tagger(tmp_path, evil):
    from rlipv2.engine.predictor import RelationPredictor
    from rlipv2.pseudo_labeling.tagging import LazyConfigTagger

    with pytest.raises(UnsafeCheckpointError, match=f"{REFUSED} .*evil.pth"):
        RelationPredictor(ToyRelationModel(), str(evil), device="cpu")
    with pytest.raises(UnsafeCheckpointError, match=f"{REFUSED} .*evil.pth"):
        LazyConfigTagger(str(write_toy_config(tmp_path)), weights=str(evil))


def test_crafted_pickle_refused_by_the_vcoco_cli_even_with_allow_pickle(tmp_path):
    import pickle

    from rlipv2.evaluation.vcoco import load_detections

    marker = tmp_path / "code_ran"
    dets = tmp_path / "dets.pkl"
    dets.write_bytes(pickle.dumps([{"image_id": 1, "person_box": _RunsCode(marker)}]))
    with pytest.raises(ValueError, match="refusing to load a pickle"):
        load_detections(str(dets), None)
    with pytest.raises(UnsafeCheckpointError, match=r"dets.pkl.*(system|not allowed)"):
        load_detections(str(dets), None, allow_pickle=True)
    assert not marker.exists()


# ==================================================================================================
# Issue 15: one schema per format (rlipv2/schemas), property-tested; then one test per finding.
# ==================================================================================================
import argparse  # noqa: E402
import copy  # noqa: E402
import random  # noqa: E402
import zipfile  # noqa: E402

from rlipv2.schemas.core import SchemaError  # noqa: E402
from rlipv2.schemas.violations import SCHEMAS, VIOLATIONS, valid_records  # noqa: E402

_PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.mark.parametrize("schema_name", sorted(SCHEMAS))
def test_schema_refuses_every_single_rule_violation_naming_the_field(schema_name):
    """A valid file with exactly one rule broken: the broken record is refused, every problem names the
    field of that rule, and the other records still pass."""
    schema, ctx, _ = SCHEMAS[schema_name]
    rules = [v for v in VIOLATIONS if v.schema == schema_name]
    assert rules

    @_PROPERTY
    @given(rng=st.randoms(use_true_random=False), violation=st.sampled_from(rules))
    def check(rng, violation):
        records = valid_records(schema_name, rng)
        assert not schema.validate(copy.deepcopy(records), "f.json", ctx).problems  # the base file is valid
        i, field = violation.apply(records, rng)
        res = schema.validate(records, "f.json", ctx)
        assert res.problems and i in res.bad, (violation.rule, records[i])
        for p in res.problems:
            assert p.field.startswith(field), (violation.rule, field, str(p))
            assert str(p).startswith("f.json: image ") and f"field '{p.field}'" in str(p)
        assert {j for j, _ in res.records} == set(range(len(records))) - res.bad

    check()


_words = st.text(alphabet="abcdefghij_ ", min_size=1, max_size=12).filter(lambda t: t.replace("_", " ").strip())


@_PROPERTY
@given(labels=st.lists(_words, min_size=1, max_size=6, unique_by=lambda t: " ".join(t.replace("_", " ").split())),
       fmt=st.sampled_from(["ids", "plain", "json_dict", "json_list"]))
def test_multi_word_labels_survive_every_vocabulary_format(tmp_path_factory, labels, fmt):
    from rlipv2.schemas.vocabulary import normalize_label, read_vocabulary

    path = tmp_path_factory.mktemp("vocab") / ("v.json" if fmt.startswith("json") else "v.txt")
    if fmt == "ids":
        path.write_text("".join(f"{k + 1:03d} {t}\n" for k, t in enumerate(labels)))
    elif fmt == "plain":
        path.write_text("".join(f"{t}\n" for t in labels))
    elif fmt == "json_dict":
        path.write_text(json.dumps({t: k + 1 for k, t in enumerate(labels)}))
    else:
        path.write_text(json.dumps(labels))
    v = read_vocabulary(path, "predicate")
    assert list(v.names) == [normalize_label(t) for t in labels]
    assert list(v.ids) == list(range(1, len(labels) + 1))


@_PROPERTY
@given(data=st.binary(min_size=0, max_size=64), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", b"{"]))
def test_any_bytes_as_a_checkpoint_give_one_clear_error(tmp_path_factory, data, prefix):
    from rlipv2.engine import RLIPv2Checkpointer

    path = tmp_path_factory.mktemp("ckpt") / "x.pth"
    path.write_bytes(prefix + data)
    # (a few bytes can be a valid pickle of a number or None: "holds a ..., expected a dict")
    with pytest.raises(SchemaError, match=r"checkpoint '.*x.pth' (is empty|is not a PyTorch|is truncated|is corrupt|"
                                          r"holds a)"):
        RLIPv2Checkpointer(ToyRelationModel()).load(str(path))


# ------------------------------------------------------------------------- vocabulary (issue 14, item 3)
def _custom_hico(tmp_path):
    root = tmp_path / "imgs"
    write_image(str(root / "a.jpg"))
    ann = [{"file_name": "a.jpg", "annotations": [{"bbox": [1, 2, 30, 40], "category_id": 1},
                                                   {"bbox": [20, 10, 60, 45], "category_id": 2}],
            "hoi_annotation": [{"subject_id": 0, "object_id": 1, "category_id": 1}]}]
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    (tmp_path / "verbs.txt").write_text("001 type on\n002  look_at \n")
    (tmp_path / "objects.json").write_text(json.dumps({"person": 1, "laptop computer": 2}))
    return tmp_path / "ann.json", root


def test_verb_file_keeps_multi_word_labels_and_refuses_ids_outside_it(tmp_path, caplog):
    from detectron2.data import DatasetCatalog

    from rlipv2.data import register_relation_dataset

    js, root = _custom_hico(tmp_path)
    md = register_relation_dataset("t15_vocab", str(js), str(root), object_names_file=str(tmp_path / "objects.json"),
                                   verb_names_file=str(tmp_path / "verbs.txt"))
    assert md.predicate_classes == ["type on", "look at"]
    assert md.thing_classes == ["person", "laptop computer"]
    with caplog.at_level("INFO"):
        dicts = DatasetCatalog.get("t15_vocab")
    assert dicts[0]["relations"][0]["predicate"] == 0
    assert "vocabulary: 2 object classes from" in caplog.text and "verbs.txt" in caplog.text
    data = json.loads(js.read_text())
    data[0]["hoi_annotation"][0]["category_id"] = 3  # not in verbs.txt
    js.write_text(json.dumps(data))
    with pytest.raises(RelationDataError, match=r"hoi_annotation\[0\].category_id': unknown predicate id 3 "
                                                r"\(vocabulary: 2 predicate classes from .*verbs.txt"):
        DatasetCatalog.get("t15_vocab")
    DatasetCatalog.remove("t15_vocab")


def test_validator_names_the_vocabulary_and_its_source(tmp_path, capsys):
    from rlipv2.data.validate import main

    js, root = _custom_hico(tmp_path)
    main([str(js), "--format", "hico", "--image-root", str(root)])
    out = capsys.readouterr().out
    assert "80 object classes from packaged rlipv2/data/metadata/hico_object_names.txt" in out
    assert "note: checked against the packaged HICO-DET vocabulary" in out
    rc = main([str(js), "--format", "hico", "--image-root", str(root), "--object-names",
               str(tmp_path / "objects.json"), "--verb-names", str(tmp_path / "verbs.txt")])
    out = capsys.readouterr().out
    assert rc == 0 and "2 predicate classes from" in out and "verbs.txt" in out and "note:" not in out


# --------------------------------------------------------------------------------- finding 1: memory
def _oi_gt_and_pred(tmp_path, category_id=3):
    gt = [{"file_name": "a.jpg", "annotations": [{"bbox": [1, 2, 30, 40], "category_id": 0},
                                                  {"bbox": [20, 10, 60, 45], "category_id": category_id}],
           "rel_annotations": [{"subject_id": 0, "object_id": 1, "category_id": 2}]}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    np.savez(tmp_path / "pred.npz", file_names=np.array(["a.jpg"]),
             boxes_0=np.array([[1, 2, 30, 40], [20, 10, 60, 45.]]), labels_0=np.array([0, 3]),
             rel_scores_0=np.full((1, 30), 0.5), sub_ids_0=np.array([0]), obj_ids_0=np.array([1]))
    return ["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.npz")]


def test_oi_cli_refuses_a_huge_class_id_before_allocating(tmp_path):
    from rlipv2.evaluation import oi

    args = _oi_gt_and_pred(tmp_path, category_id=300_000_000)
    with pytest.raises(SchemaError, match=r"gt.json: image 'a.jpg': field 'annotations\[1\].category_id': input "
                                          r"should be less than or equal to 65535"):
        oi.main(args)
    assert oi.main(_oi_gt_and_pred(tmp_path))["oi"]["R@50"] == pytest.approx(1.0)  # the same file, valid id


def _patch_declared_size(path: Path, member: str, size: int) -> None:
    """Make the zip directory of ``path`` claim that ``member`` inflates to ``size`` bytes."""
    raw = bytearray(path.read_bytes())
    pos, patched = raw.find(b"PK\x01\x02"), 0  # central directory entries
    while pos >= 0:
        nlen = int.from_bytes(raw[pos + 28: pos + 30], "little")
        if raw[pos + 46: pos + 46 + nlen].decode() == member:
            raw[pos + 24: pos + 28] = size.to_bytes(4, "little")  # the uncompressed size
            patched += 1
        pos = raw.find(b"PK\x01\x02", pos + 4)
    assert patched == 1
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as z:
        assert z.getinfo(member).file_size == size


def _npy_bytes(arr, **header) -> bytes:
    """A .npy file of ``arr`` with some header fields replaced by the given (literal) texts."""
    d = {"descr": repr(arr.dtype.str), "fortran_order": "False", "shape": repr(arr.shape)}
    d.update(header)
    text = "{" + ", ".join(f"'{k}': {v}" for k, v in d.items()) + ", }"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1") + arr.tobytes()


def _write_npz_member(path, key, data: bytes) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(key + ".npy", data)


def test_npz_declared_sizes_are_bounded_before_reading(tmp_path):
    from rlipv2.evaluation.hico_io import NpzReader

    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, file_names=np.array(["a.jpg"]), boxes_0=np.zeros((1000, 4)))
    _patch_declared_size(bomb, "boxes_0.npy", 3_500_000_000)  # 3.5 GB from a few hundred bytes
    z = NpzReader(bomb)
    with pytest.raises(SchemaError, match=r"bomb.npz: member 'boxes_0' declares 3,500,000,000 bytes, above the "
                                          r"limit of 1,073,741,824"):
        z["boxes_0"]
    assert z["file_names"].tolist() == ["a.jpg"]
    huge = tmp_path / "huge.npz"  # a stored member whose .npy header claims 80 GB
    _write_npz_member(huge, "boxes_0", _npy_bytes(np.zeros(4), shape="(10000000000,)"))
    with pytest.raises(SchemaError, match=r"huge.npz: member 'boxes_0' declares 80,000,000,000 bytes"):
        NpzReader(huge)["boxes_0"]
    _write_npz_member(huge, "boxes_0", _npy_bytes(np.zeros(4), shape="(400,)"))  # more than the member holds
    with pytest.raises(SchemaError, match=r"declares 3,200 bytes of data but the member holds 32"):
        NpzReader(huge)["boxes_0"]


def test_demo_images_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image

    from rlipv2.engine.predictor import RelationPredictor

    big = tmp_path / "big.png"
    Image.new("L", (9000, 8000)).save(big)  # 72 megapixels, above the default 64
    pred = RelationPredictor(ToyRelationModel(), min_size=32, max_size=64, device="cpu")
    with pytest.raises(ValueError, match=r"big.png' is 9000x8000 = 72,000,000 pixels, above the limit of 64,000,000"):
        pred.read_image(str(big))
    small = tmp_path / "small.jpg"
    write_image(str(small), w=640, h=480)
    img, _ = pred.read_image(str(small))  # shrunk right after decoding (a JPEG: decoded at 1/8 scale)
    assert img.shape == (60, 80, 3)  # its shorter side stays >= min_size (32)
    result = pred(str(small), objects="person, horse, dog", relations="ride, feed")
    assert (result["height"], result["width"]) == (480, 640)  # boxes in the file's pixels
    boxes = [t["subject"]["box"] for t in result["triplets"]]
    assert boxes and max(b[2] for b in boxes) > 64  # not in the shrunk image's pixels
    monkeypatch.setenv("RLIPV2_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ValueError, match="above the limit of 1,000"):
        pred.read_image(str(small))


def test_pytorch_triplet_nms_builds_bounded_blocks(monkeypatch):
    import importlib

    tn = importlib.import_module("rlipv2.layers.triplet_nms")
    seen = []
    real = tn._pair_overlap

    def spy(xp, sa, oa, sb, ob, alpha, beta):
        seen.append(len(sa) * len(sb))
        return real(xp, sa, oa, sb, ob, alpha, beta)

    g = torch.Generator().manual_seed(0)
    n = 1500
    xy = torch.rand(n, 2, generator=g) * 200
    sub = torch.cat([xy, xy + 30], 1)
    obj = torch.cat([xy + 5, xy + 40], 1)
    scores, groups = torch.rand(n, generator=g), torch.zeros(n, dtype=torch.int64)
    full = tn.triplet_nms_pytorch(sub, obj, scores, groups, 0.7)
    monkeypatch.setattr(tn, "_MAX_BLOCK_ENTRIES", 20_000)
    monkeypatch.setattr(tn, "_pair_overlap", spy)
    blocked = tn.triplet_nms_pytorch(sub, obj, scores, groups, 0.7)
    assert torch.equal(full, blocked) and 0 < int(blocked.sum()) < n
    assert max(seen) <= 20_000  # a (1500, 1500) matrix would be 2,250,000


# -------------------------------------------------------------------------------- finding 3: options
@pytest.mark.parametrize("module,args", [
    ("rlipv2.evaluation.hico", ["--nms-thresh", "nan"]),
    ("rlipv2.evaluation.hico", ["--pred-box-offset", "nan"]),
    ("rlipv2.evaluation.hico", ["--top-k", "-1"]),
    ("rlipv2.evaluation.hico", ["--nms-alpha", "inf"]),
    ("rlipv2.evaluation.vcoco", ["--ovr-thresh", "1.5"]),
    ("rlipv2.evaluation.oi", ["--num-rels", "0"]),
    ("tools/demo.py", ["--score-thresh", "nan"]),
    ("tools/demo.py", ["--top-k", "0"]),
    ("tools/pseudo_label.py", ["--threshold", "nan"]),
    ("tools/pseudo_label.py", ["--shard-size", "0"]),
    ("tools/pseudo_label.py", ["--top-p", "0"]),
    ("tools/convert_official_checkpoint.py", ["--num-queries", "-4"]),
])
def test_numeric_options_are_refused_at_parse_time(module, args, capsys):
    import importlib.util

    if module.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(module).stem, REPO / module)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        mod = __import__(module, fromlist=["x"])
    required = {"rlipv2.evaluation.hico": ["--gt", "g", "--pred", "p", "--correct-mat", "c"],
                "rlipv2.evaluation.vcoco": ["--vcoco-test", "v", "--coco", "c", "--ids", "i", "--det", "d"],
                "rlipv2.evaluation.oi": ["--gt", "g", "--pred", "p"],
                "tools/demo.py": ["--config-file", "c", "--input", "i", "--objects", "o", "--relations", "r",
                                  "--output", "x"],
                "tools/pseudo_label.py": ["--detection-json", "d", "--output-dir", "o"],
                "tools/convert_official_checkpoint.py": ["in.pth", "out.pth"]}[module]
    parse = (mod.main if module.endswith("convert_official_checkpoint.py")
             else getattr(mod, "build_parser", getattr(mod, "get_parser", None))().parse_args)
    with pytest.raises(SystemExit) as ei:
        parse(required + args)
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {args[0]}" in err and args[1] in err


def test_pipeline_config_refuses_bad_numbers():
    from rlipv2.pseudo_labeling import PipelineConfig

    with pytest.raises(ValueError, match="shard_size must be an integer >= 1, got 0"):
        PipelineConfig(detection_json="d", output_dir="o", shard_size=0)
    with pytest.raises(ValueError, match="score_threshold must be a number in"):
        PipelineConfig(detection_json="d", output_dir="o", score_threshold=float("nan"))


# ---------------------------------------------------------------------- finding 4: resume and init
def _trainer_ckpt(tmp_path, iteration=3, trainer=True):
    model = ToyRelationModel()
    data = {"model": model.state_dict()}
    if trainer:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        data["trainer"] = {"iteration": iteration, "optimizer": opt.state_dict()}
    out = tmp_path / "run"
    out.mkdir(exist_ok=True)
    torch.save(data, out / "model_0000003.pth")
    (out / "last_checkpoint").write_text("model_0000003.pth")
    return out


def test_resume_refuses_bad_tags_model_only_truncated_and_out_of_range_checkpoints(tmp_path):
    from rlipv2.engine import RLIPv2Checkpointer
    from rlipv2.schemas.checkpoint import check_resume_iteration

    def resume(out):
        return RLIPv2Checkpointer(ToyRelationModel(), str(out)).resume_or_load("", resume=True)

    out = _trainer_ckpt(tmp_path)
    resume(out)  # a good one resumes
    (out / "last_checkpoint").write_text("")
    with pytest.raises(SchemaError, match=r"cannot resume: '.*last_checkpoint' is empty"):
        resume(out)
    (out / "last_checkpoint").write_text("model_0000099.pth")
    with pytest.raises(SchemaError, match=r"names 'model_0000099.pth', which is not a file"):
        resume(out)
    out = _trainer_ckpt(tmp_path, trainer=False)
    with pytest.raises(SchemaError, match=r"model_0000003.pth': it holds model weights only .*train.init_checkpoint="):
        resume(out)
    out = _trainer_ckpt(tmp_path, iteration=-2)
    with pytest.raises(SchemaError, match=r"'trainer.iteration' is negative \(-2\)"):
        resume(out)
    ckpt = out / "model_0000003.pth"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(SchemaError, match=r"checkpoint '.*model_0000003.pth' is truncated or corrupt"):
        resume(out)
    with pytest.raises(SchemaError, match=r"trainer.iteration 20 is outside \[0, train.max_iter = 20\)"):
        check_resume_iteration(20, 20, "x.pth")


def test_init_checkpoint_matching_no_weight_is_refused_and_partial_matches_are_reported(tmp_path, caplog):
    from rlipv2.engine import RLIPv2Checkpointer

    path = tmp_path / "other.pth"
    torch.save({"model": {"backbone.w": torch.zeros(3)}}, path)
    with pytest.raises(CheckpointMismatchError, match=r"other.pth': none of its 1 weights matches a weight of "
                                                      r"ToyRelationModel"):
        RLIPv2Checkpointer(ToyRelationModel()).resume_or_load(str(path), resume=False)
    state = ToyRelationModel().state_dict()
    half = dict(list(state.items())[: len(state) // 2])
    torch.save({"model": half}, path)
    with caplog.at_level("INFO"):
        RLIPv2Checkpointer(ToyRelationModel()).resume_or_load(str(path), resume=False)
    assert f"set {len(half)} of the model's {len(state)} weights" in caplog.text


@pytest.mark.slow  # a train_net subprocess (~10 s)
def test_train_net_resume_from_a_model_only_checkpoint_is_one_line(tmp_path):
    out = _trainer_ckpt(tmp_path, trainer=False)
    cfg = write_toy_config(tmp_path)
    p = _run([REPO / "tools" / "lazyconfig_train_net.py", "--config-file", cfg, "--resume",
              f"train.output_dir={out}", "train.max_iter=4"], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "holds model weights only" in p.stderr.strip().splitlines()[-1]


# ------------------------------------------------------------------------------- finding 5: images
def test_16_bit_png_and_float_tiff_keep_their_content(tmp_path):
    from PIL import Image

    from rlipv2.data.relation_dataset_mapper import read_image
    from rlipv2.engine.predictor import RelationPredictor

    ramp = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    rgb = read_image(str(tmp_path / "g16.png"))
    assert rgb.dtype == np.uint8 and (rgb == 255).mean() < 0.01  # was 99.6 % white
    np.testing.assert_array_equal(rgb[..., 0], (ramp >> 8).astype(np.uint8))
    f = np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64)
    Image.fromarray(f, mode="F").save(tmp_path / "f32.tif")
    pred = RelationPredictor(ToyRelationModel(), min_size=32, max_size=64, device="cpu")
    img, _ = pred.read_image(str(tmp_path / "f32.tif"))
    assert abs(float(img.mean()) - 127.5) < 1.0  # was black
    Image.fromarray(f * 300, mode="F").save(tmp_path / "f300.tif")
    with pytest.raises(ValueError, match=r"f300.tif' is a 32-bit float image with values in \[0, 300\]"):
        read_image(str(tmp_path / "f300.tif"))


def test_demo_skips_a_bad_image_and_still_writes_triplets_json(tmp_path, monkeypatch):
    import importlib.util

    from rlipv2.engine import RLIPv2Checkpointer

    spec = importlib.util.spec_from_file_location("demo_tool", REPO / "tools" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    RLIPv2Checkpointer(ToyRelationModel(num_queries=4, dim=8), str(tmp_path / "w")).save("toy")
    cfg = tmp_path / "demo_cfg.py"
    cfg.write_text("from detectron2.config import LazyCall as L\nfrom engine_toys import ToyRelationModel\n"
                   "model = L(ToyRelationModel)(num_queries=4, dim=8)\n")
    images = tmp_path / "images"
    write_image(str(images / "a.jpg"))
    (images / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    write_image(str(images / "c.jpg"), seed=1)
    out = tmp_path / "out"
    rc = demo.main(["--config-file", str(cfg), "--weights", str(tmp_path / "w" / "toy.pth"), "--input", str(images),
                    "--objects", "person, horse, dog", "--relations", "ride, feed", "--min-size", "32",
                    "--device", "cpu",
                    "--output", str(out)])
    data = json.loads((out / "triplets.json").read_text())
    assert rc == 0 and [os.path.basename(r["file_name"]) for r in data["images"]] == ["a.jpg", "c.jpg"]
    assert [os.path.basename(s["file_name"]) for s in data["skipped"]] == ["b.jpg"]
    assert "cannot read image" in data["skipped"][0]["error"]


# ---------------------------------------------------------------------------------- finding 6: ops
def test_compiled_ms_deform_attn_propagates_nan_like_the_pytorch_path():
    from rlipv2.layers import ms_deform_attn
    from rlipv2.layers.multi_scale_deform_attn import _has_kernel

    if not _has_kernel("cpu"):
        pytest.skip("rlipv2._C is not built")
    args = _msda_inputs()
    for bad in (float("nan"), float("inf"), -float("inf"), 1e37, 7.0):
        loc = args["sampling_locations"].clone()
        loc[0, 1, 0, 1, 0, 0] = bad
        a = dict(args, sampling_locations=loc)
        ref, ker = ms_deform_attn(**a, backend="pytorch"), ms_deform_attn(**a, backend="cpu")
        assert torch.equal(torch.isnan(ref), torch.isnan(ker)), bad
        torch.testing.assert_close(torch.nan_to_num(ker), torch.nan_to_num(ref), atol=1e-6, rtol=1e-5)
    attn = args["attention_weights"].clone()
    loc = args["sampling_locations"].clone()
    loc[0, 0, 1, 0, 1] = 5.0  # outside the map: the reference still multiplies its zero sample by NaN
    attn[0, 0, 1, 0, 1] = float("nan")
    a = dict(args, sampling_locations=loc, attention_weights=attn)
    assert torch.equal(torch.isnan(ms_deform_attn(**a, backend="pytorch")), torch.isnan(ms_deform_attn(**a,
                                                                                                    backend="cpu")))


@pytest.mark.parametrize("kw", [dict(thresh=float("nan")), dict(thresh=float("inf")), dict(alpha=float("nan")),
                                dict(beta=None)])
def test_triplet_nms_refuses_non_finite_parameters(kw):
    from rlipv2.layers import triplet_nms

    b = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11]])
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"triplet_nms: {name} must be a finite number"):
        triplet_nms(b, b, torch.tensor([0.9, 0.8]), torch.tensor([0, 0]), **kw)


# ----------------------------------------------------------------------------- finding 7: messages
def test_vcoco_and_oi_gt_type_errors_are_one_line(tmp_path):
    from rlipv2.evaluation import oi
    from rlipv2.evaluation.vcoco import load_vcoco_gt

    (tmp_path / "vcoco.json").write_text(json.dumps([{"action_name": "hold", "role_name": ["agent", "obj"],
                                                      "ann_id": [1, 2.5], "label": [1, 0], "image_id": [1, 1],
                                                      "role_object_id": [0, 0, 0, 0]}]))
    (tmp_path / "coco.json").write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1}]}))
    (tmp_path / "ids").write_text("1\n")
    with pytest.raises(SchemaError, match=r"vcoco.json: image 'action #0': field 'ann_id': must be a list of "
                                          r"integers"):
        load_vcoco_gt(tmp_path / "vcoco.json", tmp_path / "coco.json", tmp_path / "ids")
    args = _oi_gt_and_pred(tmp_path)
    gt = json.loads((tmp_path / "gt.json").read_text())
    gt[0]["rel_annotations"][0]["subject_id"] = "0"
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with pytest.raises(SchemaError, match=r"gt.json: image 'a.jpg': field 'rel_annotations\[0\].subject_id': must "
                                          r"be an integer"):
        oi.main(args)


def test_gt_and_prediction_ids_are_never_truncated(tmp_path):
    from rlipv2.evaluation.hico_io import IdMaps, gt_from_json

    gt = [{"file_name": "a.jpg", "annotations": [{"bbox": [1, 2, 30, 40], "category_id": 1},
                                                  {"bbox": [20, 10, 60, 45], "category_id": 18}],
           "hoi_annotation": [{"subject_id": 0.9, "object_id": 1, "category_id": 58}]}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    ids = IdMaps.from_spec(np.ones((117, 80)))
    with pytest.raises(SchemaError, match=r"field 'hoi_annotation\[0\].subject_id': must be an integer .* got 0.9"):
        gt_from_json(tmp_path / "gt.json", ids)


def test_malformed_npz_headers_name_the_file_and_member(tmp_path):
    from rlipv2.evaluation.hico_io import NpzReader

    path = tmp_path / "p.npz"
    for bad in ({"descr": "'zz'"}, {"shape": "(-4,)"}, {"fortran_order": "7"}, {"shape": "'four'"},
                {"descr": "__import__('os')"}):
        _write_npz_member(path, "boxes_0", _npy_bytes(np.zeros(4), **bad))
        with pytest.raises(SchemaError, match=r"p.npz: member 'boxes_0': malformed .npy header"):
            NpzReader(path)["boxes_0"]
    _write_npz_member(path, "boxes_0", _npy_bytes(np.zeros(4)))
    assert NpzReader(path)["boxes_0"].tolist() == [0.0] * 4


def test_checkpoint_messages_name_the_real_problem(tmp_path):
    from rlipv2.engine.checkpoint import safe_torch_load

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(SchemaError, match=r"checkpoint '.*empty.pth' is empty \(0 bytes\)"):
        safe_torch_load(str(empty))
    noise = tmp_path / "noise.pth"
    noise.write_bytes(bytes(random.Random(0).getrandbits(8) for _ in range(4096)).replace(b"\x80", b"\x81"))
    with pytest.raises(SchemaError, match=r"noise.pth' is not a PyTorch checkpoint") as ei:
        safe_torch_load(str(noise))
    assert "arbitrary code" not in str(ei.value)


def test_vg_negative_width_names_the_width_not_the_relation(tmp_path):
    e = vg_entries()
    e[0]["objects"][0]["w"] = -20
    with pytest.raises(RelationDataError, match=r"vg.json: image 7: field 'objects\[0\].w': must be >= 0"):
        _vg(e, tmp_path)
    from rlipv2.data.datasets.common import ProblemSink

    sink = ProblemSink("collect")
    load_vg_json(_dump(tmp_path / "vg.json", e), str(tmp_path), read_sizes=False, sink=sink)
    assert [p.field for p in sink.problems] == ["objects[0].w"]  # no spurious "subject_id not among objects"


def test_atomic_writes_keep_the_umask(tmp_path):
    from rlipv2.evaluation.hico_io import write_json_atomic, write_npz_atomic
    from rlipv2.utils.file_io import atomic_write_json, atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_json_atomic(tmp_path / "b.json", {"v": float("nan")})
        write_npz_atomic(tmp_path / "c.npz", [("x", np.zeros(2))])
        for name in ("a.txt", "b.json", "c.npz"):
            assert (os.stat(tmp_path / name).st_mode & 0o777) == 0o644, name
        os.umask(0o077)
        atomic_write_text(tmp_path / "d.txt", "x")
        assert (os.stat(tmp_path / "d.txt").st_mode & 0o777) == 0o600
    finally:
        os.umask(old)
    assert json.loads((tmp_path / "b.json").read_text()) == {"v": None}
    with pytest.raises(ValueError, match=r"e.json: not written: NaN or inf"):
        atomic_write_json(tmp_path / "e.json", {"v": float("nan")})
    assert not (tmp_path / "e.json").exists()


def test_argparse_types_reject_nan_and_ranges():
    from rlipv2.utils.cli import finite_float, float_in, nonnegative_int, positive_int, unit_interval

    for parse, bad in ((finite_float, "nan"), (unit_interval, "1.01"), (unit_interval, "inf"), (positive_int, "0"),
                       (nonnegative_int, "-1"), (positive_int, "2.5"), (float_in(0, 1, lo_open=True), "0")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)
    assert unit_interval("0.7") == 0.7 and positive_int("3") == 3


@pytest.mark.slow  # the whole probe corpus (~420 cases, ~30 s)
def test_probe_corpus_is_fully_handled(tmp_path):
    p = _run([REPO / "tools" / "probe_bad_inputs.py", "--seeds", "4", "--json", tmp_path / "probe.json"], tmp_path,
             timeout=600)
    counts = json.loads((tmp_path / "probe.json").read_text())["counts"]
    assert p.returncode == 0 and set(counts) == {"handled"} and counts["handled"] > 400, p.stdout[-3000:]


def test_vg_paths_use_fields_outside_the_schema(tmp_path):
    """The schema keeps the fields it checks; image paths still see the raw entry (COCO ``data_split``)."""
    e = vg_entries(confidence=True)
    e[1]["data_split"] = "val2017"
    dicts = _vg(e, tmp_path, image_source="coco2017")
    assert [d["file_name"] for d in dicts] == [str(tmp_path / "train2017" / "000000000007.jpg"),
                                                str(tmp_path / "val2017" / "000000000008.jpg")]


def test_objects365_id_to_path_map_keeps_paths_under_the_root(tmp_path):
    from rlipv2.pseudo_labeling.pipeline import _read_id_to_path

    (tmp_path / "map.json").write_text(json.dumps({"1": "images/a.jpg", "2": "../../etc/passwd"}))
    with pytest.raises(ValueError, match=r"map.json: image '2': the path must be relative"):
        _read_id_to_path(str(tmp_path / "map.json"))
    (tmp_path / "map.json").write_text(json.dumps({"1": "images/a.jpg"}))
    assert _read_id_to_path(str(tmp_path / "map.json")) == {"1": "images/a.jpg"}
