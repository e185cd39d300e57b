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
    p = _run(args, REPO)
    assert p.returncode == 2 and "test_hico.json" in p.stderr.splitlines()[-1], p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    gt.write_text("[]")
    p = _run(args, REPO)
    assert p.returncode == 2 and "pred.npz" in p.stderr.splitlines()[-1], p.stderr[-2000:]
    assert "Traceback" not in p.stderr


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
