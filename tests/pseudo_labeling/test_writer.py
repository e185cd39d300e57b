"""VG-style output format, global renumbering on merge, and the summary."""
import json

from rlipv2.pseudo_labeling.detection import ImageRecord
from rlipv2.pseudo_labeling.io import atomic_write_json, is_shard_complete, shard_path
from rlipv2.pseudo_labeling.writer import START_ID, build_vg_entry, format_summary, merge_shards, summarize


def _entry(image_id, n_obj, rels, start=START_ID):
    rec = ImageRecord(image_id, f"{image_id}.jpg", 100, 200,
                      [[float(i), 2.0 * i, 10.0, 20.0] for i in range(n_obj)], [1] * n_obj)
    return build_vg_entry(rec, [f"obj{i}" for i in range(n_obj)], rels, "coco2017", "train2017", start, start)


def test_vg_entry_format():
    e, nxt_obj, nxt_rel = _entry(7, 3, [[0, 2, "riding", 0.9], [2, 1, "next to", 0.06]])
    assert set(e) == {"image_id", "dataset", "data_split", "objects", "relationships", "file_name", "width", "height"}
    assert e["image_id"] == 7 and e["dataset"] == "coco2017" and e["data_split"] == "train2017"
    assert e["objects"][1] == {"object_id": START_ID + 1, "x": 1.0, "y": 2.0, "w": 10.0, "h": 20.0, "names": "obj1"}
    assert e["relationships"][0] == {"relationship_id": START_ID, "predicate": "riding", "subject_id": START_ID,
                                     "object_id": START_ID + 2, "confidence": 0.9}
    assert e["relationships"][1]["subject_id"] == START_ID + 2 and e["relationships"][1]["object_id"] == START_ID + 1
    assert (nxt_obj, nxt_rel) == (START_ID + 3, START_ID + 2)
    e2, _, _ = build_vg_entry(ImageRecord(1, "a.jpg", 1, 1), [], [], "o365", None, 5, 5)
    assert "data_split" not in e2 and e2["objects"] == [] and e2["relationships"] == []


def test_merge_renumbers_ids_globally(tmp_path):
    shard0 = [_entry(1, 2, [[0, 1, "on", 0.5]])[0], _entry(2, 1, [])[0]]
    shard1 = [_entry(3, 2, [[1, 0, "holding", 0.1], [0, 1, "on", 0.3]])[0]]  # ids restart in each shard
    out = tmp_path / "final.json"
    stats = merge_shards([shard0, shard1], str(out))
    data = json.loads(out.read_text())
    assert [e["image_id"] for e in data] == [1, 2, 3]
    obj_ids = [o["object_id"] for e in data for o in e["objects"]]
    assert obj_ids == list(range(START_ID, START_ID + 5))
    rel_ids = [r["relationship_id"] for e in data for r in e["relationships"]]
    assert rel_ids == list(range(START_ID, START_ID + 3))
    r = data[2]["relationships"][0]
    assert (r["subject_id"], r["object_id"]) == (START_ID + 4, START_ID + 3)  # still points at its own objects
    assert stats["images"] == 3 and stats["relations"] == 3 and stats["images_with_relations"] == 2
    assert stats["relations_conf_ge_0.2"] == 2 and stats["top_predicates"][0] == ("on", 2)
    assert stats["predicate_vocabulary_size"] == 2 and stats["object_vocabulary_size"] == 2
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind
    assert "relations_per_image" in format_summary({"output": stats})


def test_summarize_counts():
    entries = [_entry(1, 2, [[0, 1, "on", 0.9], [1, 0, "on", 0.1], [0, 1, "has", 0.25]])[0], _entry(2, 2, [])[0]]
    s = summarize(entries)
    assert s["relations_per_image"] == 1.5 and s["relations_per_image_with_relations"] == 3.0
    assert s["predicate_vocabulary_size_conf_ge_0.2"] == 2 and s["relations_conf_ge_0.2"] == 2


def test_atomic_shard_write_and_completeness(tmp_path):
    p = shard_path(str(tmp_path), "tag", 3)
    assert not is_shard_complete(str(tmp_path), "tag", 3)
    atomic_write_json(p, {"meta": {"complete": True, "num_images": 2}, "data": {}})
    assert is_shard_complete(str(tmp_path), "tag", 3, {"num_images": 2})
    assert not is_shard_complete(str(tmp_path), "tag", 3, {"num_images": 5})
    with open(p, "w") as f:
        f.write('{"meta": {"complete": true')  # a truncated file (e.g. from a copy) is not complete
    assert not is_shard_complete(str(tmp_path), "tag", 3)
