"""The pipeline end to end on a tiny COCO-format set: stages, bad-input counts, resume, CLI, 2 gloo ranks."""
import json
import os
import subprocess
import sys

import pytest

from rlipv2.pseudo_labeling import PipelineConfig, PseudoLabelPipeline
from rlipv2.pseudo_labeling.io import shard_path
from rlipv2.pseudo_labeling.tagging import ModuleRelationTagger, RandomRelationTagger
from rlipv2.pseudo_labeling.writer import START_ID

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGE_DIRS = ("captions", "parse", "match", "tag", "write")

pytest.importorskip("sng_parser", reason="SceneGraphParser (scenegraphparser) is not installed")


class CountingTagger(ModuleRelationTagger):
    def __init__(self):
        super().__init__(RandomRelationTagger(seed=0), min_size=64, max_size=128)
        self.calls = 0

    def tag(self, *args, **kwargs):
        self.calls += 1
        return super().tag(*args, **kwargs)


def _cfg(d, out, **kw):
    kw.setdefault("shard_size", 2)
    kw.setdefault("num_workers", 0)
    return PipelineConfig(detection_json=d["detection_json"], image_root=d["image_root"],
                          captions_json=d["captions_json"], output_dir=str(out),
                          dataset_name="coco2017", data_split="train2017", progress=False, **kw)


def _run(d, out, stages=None, tagger=None, **kw):
    p = PseudoLabelPipeline(_cfg(d, out, **kw), tagger=tagger or CountingTagger(), rank=0, world_size=1,
                            barrier=lambda: None)
    return p, (p.run(stages) if stages else p.run())


def to_dataset_dicts(entries, threshold=0.2):
    """What a VG-format loader does with the file: boxes to xyxy, relations to object indices, threshold."""
    out = []
    for e in entries:
        index = {o["object_id"]: i for i, o in enumerate(e["objects"])}
        anns = [{"bbox": [o["x"], o["y"], o["x"] + o["w"], o["y"] + o["h"]], "name": o["names"]} for o in e["objects"]]
        rels = [{"subject": index[r["subject_id"]], "object": index[r["object_id"]], "predicate": r["predicate"],
                 "confidence": r["confidence"]} for r in e["relationships"] if r.get("confidence", 1.0) >= threshold]
        out.append({"image_id": e["image_id"], "file_name": e["file_name"], "annotations": anns, "relations": rels})
    return out


def test_end_to_end(tiny_coco, tmp_path):
    out = tmp_path / "out"
    _, summary = _run(tiny_coco, out)
    data = json.loads((out / "pseudo_relations.json").read_text())
    assert [e["image_id"] for e in data] == [1, 2, 3, 4, 5]
    for e in data:
        assert e["dataset"] == "coco2017" and e["data_split"] == "train2017"
        for o in e["objects"]:
            assert set(o) == {"object_id", "x", "y", "w", "h", "names"}
        for r in e["relationships"]:
            assert set(r) == {"relationship_id", "predicate", "subject_id", "object_id", "confidence"}
            assert r["confidence"] > 0.05
    obj_ids = [o["object_id"] for e in data for o in e["objects"]]
    assert obj_ids == list(range(START_ID, START_ID + len(obj_ids)))  # crowd box dropped: 10 boxes
    assert len(obj_ids) == 10
    e1 = data[0]
    assert [o["names"] for o in e1["objects"]] == ["person", "horse", "person"]
    assert (e1["objects"][1]["x"], e1["objects"][1]["y"], e1["objects"][1]["w"], e1["objects"][1]["h"]) == (
        20.0, 10.0, 40.0, 30.0)
    # every relation is a candidate from the captions: (person, riding|on|next to, horse) etc.
    allowed = {1: {("person", "riding", "horse"), ("person", "next to", "horse")},
               2: {("person", "holding", "cup"), ("person", "from", "cup")},
               3: {("horse", "next to", "gizmo")}}
    names = {o["object_id"]: o["names"] for e in data for o in e["objects"]}
    seen = set()
    for e in data:
        for r in e["relationships"]:
            t = (names[r["subject_id"]], r["predicate"], names[r["object_id"]])
            assert t in allowed[e["image_id"]], t
            seen.add(t)
    assert len(seen) >= 3  # the random tagger passes most candidates at 0.05
    assert data[3]["relationships"] == [] and data[4]["relationships"] == []  # missing JPEG / no caption

    dicts = to_dataset_dicts(data)
    assert sum(len(d["relations"]) for d in dicts) == summary["output"]["relations_conf_ge_0.2"]
    assert all(0 <= r["subject"] < len(d["annotations"]) for d in dicts for r in d["relations"])

    issues = summary["issues"]
    assert issues["empty_caption"] == 1
    assert issues["caption_image_not_in_detection_file"] == 1
    assert issues["image_without_captions"] == 1
    assert issues["category_without_paraphrase"] == 1
    assert issues["image_file_unreadable"] == 1
    assert issues["crowd_box_dropped"] == 1
    assert issues["annotation_image_missing"] == 1
    assert summary["stages"]["match"]["candidate_pairs"] == 2 * 2 + 2 + 1 + 1  # img1: 2 persons x 2 texts
    assert summary["output"]["images"] == 5
    saved = json.loads((out / "summary.json").read_text())
    assert saved["issues"] == issues and saved["output"]["relations"] == summary["output"]["relations"]


def test_resume_skips_finished_shards(tiny_coco, tmp_path):
    out = tmp_path / "out"
    _run(tiny_coco, out)
    final = (out / "pseudo_relations.json").read_text()
    mtimes = {(s, i): os.stat(shard_path(str(out), s, i)).st_mtime_ns for s in STAGE_DIRS for i in range(3)}
    t = CountingTagger()
    _run(tiny_coco, out, tagger=t)
    assert t.calls == 0  # nothing re-tagged
    assert all(os.stat(shard_path(str(out), s, i)).st_mtime_ns == m for (s, i), m in mtimes.items())
    # lose one tag shard and a truncated write shard: only those are redone
    os.remove(shard_path(str(out), "tag", 0))
    with open(shard_path(str(out), "write", 2), "w") as f:
        f.write("[{")
    t = CountingTagger()
    _run(tiny_coco, out, tagger=t)
    assert t.calls == 2  # images 1 and 2 of shard 0 (one batch of groups each)
    for (s, i), m in mtimes.items():
        changed = os.stat(shard_path(str(out), s, i)).st_mtime_ns != m
        # write shard 0 is redone too: its tag shard changed
        assert changed == ((s, i) in {("tag", 0), ("write", 0), ("write", 2)}), (s, i)
    # results are identical (deterministic tagger)
    assert (out / "pseudo_relations.json").read_text() == final


def test_drop_images_without_relations(tiny_coco, tmp_path):
    _, summary = _run(tiny_coco, tmp_path, keep_images_without_relations=False)
    data = json.loads((tmp_path / "pseudo_relations.json").read_text())
    assert [e["image_id"] for e in data] == [1, 2, 3]
    assert summary["stages"]["write"]["images_without_relations_dropped"] == 2  # counted, not silent


def test_stages_run_separately(tiny_coco, tmp_path):
    _run(tiny_coco, tmp_path / "a")
    _run(tiny_coco, tmp_path / "b", stages=["captions", "parse"])
    assert not (tmp_path / "b" / "match").exists()
    with pytest.raises(FileNotFoundError, match="run the 'match' stage first"):
        _run(tiny_coco, tmp_path / "b", stages=["tag"])
    _run(tiny_coco, tmp_path / "b", stages=["match", "tag"])
    _run(tiny_coco, tmp_path / "b", stages=["write", "merge"])
    assert (tmp_path / "a" / "pseudo_relations.json").read_text() == (
        tmp_path / "b" / "pseudo_relations.json").read_text()


def test_shard_size_change_is_refused(tiny_coco, tmp_path):
    _run(tiny_coco, tmp_path, stages=["captions"])
    with pytest.raises(ValueError, match="shard-size 2"):
        _run(tiny_coco, tmp_path, stages=["captions"], shard_size=3)
    with pytest.raises(ValueError, match="--paraphrases 'coco'"):
        _run(tiny_coco, tmp_path, stages=["captions"], paraphrases="o365")


def _cli(tiny_coco, out, *extra, timeout=300):
    cmd = [sys.executable, os.path.join(REPO, "tools", "pseudo_label.py"),
           "--detection-json", tiny_coco["detection_json"], "--image-root", tiny_coco["image_root"],
           "--captions", tiny_coco["captions_json"], "--output-dir", str(out), "--shard-size", "2",
           "--num-workers", "0", "--no-progress", "--dataset-name", "coco2017", "--tagger-opt", "seed=0", *extra]
    env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def test_cli_single_process(tiny_coco, tmp_path):
    r = _cli(tiny_coco, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Pseudo-label summary" in r.stdout and "empty_caption=1" in r.stdout
    data = json.loads((tmp_path / "out" / "pseudo_relations.json").read_text())
    assert len(data) == 5 and "data_split" not in data[0]



@pytest.mark.slow
def test_cli_two_gloo_ranks(tiny_coco, tmp_path):
    single = tmp_path / "single"
    r = _cli(tiny_coco, single)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "dist"
    r = _cli(tiny_coco, out, "--num-gpus", "2", "--dist-url", "auto")
    assert r.returncode == 0, r.stderr[-3000:]
    for stage in ("parse", "match", "tag", "write"):
        ranks = [json.loads(open(shard_path(str(out), stage, i)).read())["meta"]["rank"] for i in range(3)]
        assert ranks == [0, 1, 0], (stage, ranks)  # shard i goes to rank i % world_size
    assert (out / "pseudo_relations.json").read_text() == (single / "pseudo_relations.json").read_text()


def test_synthetic_world_with_template_captions(tiny_coco, tmp_path):
    """Captions generated from known relations; pseudo relations come from their pairs and texts.

    A pair is scored against all relation texts of its group (official semantics), so (horse, riding,
    person) can appear: the tagger, not the matcher, decides which text fits which pair.
    """
    from rlipv2.pseudo_labeling.captions import TemplateCaptioner

    known = {1: [["man", "riding", "horse"], ["horse", "next to", "woman"]], 2: [["person", "holding", "cup"]],
             5: [["person", "near", "dog"]]}  # no dog box in image 5: dropped by the triplet filter
    cfg = _cfg(tiny_coco, tmp_path, captioner="TemplateCaptioner")
    cfg.captions_json = None
    p = PseudoLabelPipeline(cfg, captioner=TemplateCaptioner(known), tagger=CountingTagger(), rank=0,
                            world_size=1, barrier=lambda: None)
    summary = p.run()
    caps = json.loads(open(shard_path(str(tmp_path), "captions", 0)).read())["data"]
    assert caps["1"] == ["a man riding a horse.", "a horse next to a woman."]
    data = json.loads((tmp_path / "pseudo_relations.json").read_text())
    names = {o["object_id"]: o["names"] for e in data for o in e["objects"]}
    triplets = {(names[r["subject_id"]], r["predicate"], names[r["object_id"]]) for e in data
                for r in e["relationships"]}
    assert ("person", "riding", "horse") in triplets or ("horse", "next to", "person") in triplets
    assert {(s, o) for s, _, o in triplets} <= {("person", "horse"), ("horse", "person"), ("person", "cup")}
    assert {p for _, p, _ in triplets} <= {"riding", "next to", "holding"}
    assert summary["stages"]["match"]["kept_relations"] == 3
    assert summary["issues"]["image_without_captions"] == 2  # images 3 and 4 have no known relation


class ColourCaptioner:
    """A captioner that needs the pixels (like BLIP)."""

    needs_images = True
    batch_size = 2

    def caption(self, images, records):
        return [[f"a man riding a horse {'reddish' if im.getpixel((0, 0))[0] > 100 else 'blue'}."]
                for im in images]


def test_generated_captions_count_missing_images(tiny_coco, tmp_path):
    cfg = _cfg(tiny_coco, tmp_path, captioner="x", num_workers=1)  # images decoded in a worker process
    cfg.captions_json = None
    p = PseudoLabelPipeline(cfg, captioner=ColourCaptioner(), tagger=CountingTagger(), rank=0, world_size=1,
                            barrier=lambda: None)
    summary = p.run(["captions", "parse"])
    assert summary is None
    caps = {}
    for i in range(3):
        caps.update(json.loads(open(shard_path(str(tmp_path), "captions", i)).read())["data"])
    assert set(caps) == {"1", "2", "3", "5"}  # image 4's JPEG is missing
    assert caps["3"] == ["a man riding a horse reddish."]
    meta = json.loads(open(shard_path(str(tmp_path), "captions", 1)).read())["meta"]
    assert meta["issues"] == {"image_file_unreadable": 1}


def test_stage_files_from_another_index_are_not_mixed(tiny_coco, tmp_path):
    _run(tiny_coco, tmp_path)  # shards of 2 images
    _run(tiny_coco, tmp_path, stages=["captions"], shard_size=3, overwrite=True)  # new index: shards of 3
    p, _ = _run(tiny_coco, tmp_path, stages=["parse"], shard_size=3)  # old parse shards are redone, not reused
    parsed = json.loads(open(shard_path(str(tmp_path), "parse", 0)).read())
    assert parsed["meta"]["num_images"] == 3 and set(parsed["data"]) == {"1", "2", "3"}
    with pytest.raises(ValueError, match="made from another index"):
        _run(tiny_coco, tmp_path, stages=["tag"], shard_size=3)  # match shards still belong to the old index


def test_image_size_mismatch_is_reported(tiny_coco, tmp_path):
    from PIL import Image

    Image.new("RGB", (10, 10)).save(os.path.join(tiny_coco["image_root"], "000000000002.jpg"))
    _, summary = _run(tiny_coco, tmp_path)
    assert summary["issues"]["image_size_mismatch"] == 1
    assert "10x10" in summary["issue_examples"]["image_size_mismatch"][0]


def test_downstream_shards_are_redone_when_upstream_changes(tiny_coco, tmp_path):
    _run(tiny_coco, tmp_path)
    before = json.loads((tmp_path / "pseudo_relations.json").read_text())
    # re-tag with another (differently seeded) tagger; write/merge must not reuse the old write shards
    other = ModuleRelationTagger(RandomRelationTagger(seed=7), min_size=64, max_size=128)
    _run(tiny_coco, tmp_path, stages=["tag"], tagger=other, overwrite=True)
    _run(tiny_coco, tmp_path, stages=["write", "merge"])
    after = json.loads((tmp_path / "pseudo_relations.json").read_text())
    conf = lambda d: [r["confidence"] for e in d for r in e["relationships"]]  # noqa: E731
    assert conf(after) != conf(before)
    tag0 = json.loads(open(shard_path(str(tmp_path), "tag", 0)).read())["meta"]
    write0 = json.loads(open(shard_path(str(tmp_path), "write", 0)).read())["meta"]
    assert write0["input_token"] == tag0["token"]


def test_nan_detection_boxes_are_dropped_counted_and_never_written(tiny_coco, tmp_path):
    """Issue 15, finding 2: a NaN box used to reach pseudo_relations.json as ``"x": NaN`` (not JSON) while the
    summary said "dropped: none"; a killed run's temporary shard file must be cleaned on resume."""
    det = json.loads(open(tiny_coco["detection_json"]).read())
    det["annotations"].append({"id": 950, "image_id": 1, "category_id": 1, "bbox": [float("nan"), 2, 10, 10],
                               "iscrowd": 0})
    with open(tiny_coco["detection_json"], "w") as f:
        json.dump(det, f)  # writes the NaN token, as a buggy detector would
    out = tmp_path / "out"
    _, summary = _run(tiny_coco, out)

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    data = json.loads((out / "pseudo_relations.json").read_text(), parse_constant=refuse)
    assert all(all(v == v for o in e["objects"] for v in (o["x"], o["y"], o["w"], o["h"])) for e in data)
    assert summary["issues"]["annotation_dropped_malformed_box"] == 1
    json.loads((out / "summary.json").read_text(), parse_constant=refuse)
    # a temporary shard file left by a killed writer (its process is gone) is removed on resume
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / "write" / f".shard_00000.json.{int(dead.stdout)}.x1y2.tmp"
    stale.write_text('[{"half')
    alive = out / "write" / f".shard_00001.json.{os.getpid()}.x1y2.tmp"  # a live writer's file stays
    alive.write_text("")
    _run(tiny_coco, out)
    assert not stale.exists() and alive.exists()
