"""Few-/zero-shot splits are reproducible; label sequences follow contract 3 and are deterministic."""

import json

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from relation_fixtures import write_json

from rlipv2.data import LabelSequenceBuilder, build_label_sequence
from rlipv2.data.datasets import builtin
from rlipv2.data.datasets.common import hico_zero_shot_triplets, rare_triplets_from_counts
from rlipv2.data.splits import (
    few_shot_entries,
    hico_unseen_file_pairs,
    sample_unseen_combinations,
    split_entries,
    zero_shot_entries,
)


def _entries(n=200):
    out = []
    for i in range(n):
        out.append(
            {
                "file_name": f"HICO_train2015_{i:08d}.jpg",
                "height": 10,
                "width": 10,
                "annotations": [
                    {"bbox": [0, 0, 5, 5], "category_id": 1},
                    {"bbox": [1, 1, 6, 6], "category_id": [37, 18, 90][i % 3]},
                ],
                "hoi_annotation": [
                    {"subject_id": 0, "object_id": 1, "category_id": [45, 58, 117][i % 3]},
                    {"subject_id": 0, "object_id": 1, "category_id": 88},
                ],
            }
        )
    return out


def test_few_shot_reproducible():
    e = _entries()
    a, b, c = few_shot_entries(e, 0.1, seed=3), few_shot_entries(e, 0.1, seed=3), few_shot_entries(e, 0.1, seed=4)
    assert len(a) == 20 and a == b and a != c
    names = [x["file_name"] for x in a]
    assert names == sorted(names)  # file order kept
    assert len(few_shot_entries(e, 0.01)) == 2


def test_zero_shot_removes_only_unseen_relations():
    e = _entries(30)
    unseen = [(45, 37)]  # kick sports ball (file ids)
    z = zero_shot_entries(e, unseen)
    assert len(z) == len(e)  # every image kept
    for orig, new in zip(e, z):
        kinds = [(r["category_id"], orig["annotations"][r["object_id"]]["category_id"]) for r in new["hoi_annotation"]]
        assert (45, 37) not in kinds
        assert len(new["hoi_annotation"]) == len(orig["hoi_annotation"]) - (
            (45, 37)
            in [(r["category_id"], orig["annotations"][r["object_id"]]["category_id"]) for r in orig["hoi_annotation"]]
        )
    assert e[0]["hoi_annotation"][0]["category_id"] == 45  # input untouched


def test_official_zero_shot_lists():
    for setting, n in (("UC-RF", 120), ("UC-NF", 120), ("UO", 100), ("UV", 84)):
        unseen, seen = hico_zero_shot_triplets(setting)
        assert len(unseen) == n and len(seen) == 600 - n and not set(unseen) & set(seen)
    pairs = hico_unseen_file_pairs("UC-RF")
    assert len(pairs) == 120 and all(1 <= v <= 117 and 1 <= o <= 90 for v, o in pairs)


def test_derived_split_files_and_registration(tmp_path, registered):
    ann = tmp_path / "hico_20160224_det" / "annotations"
    full = write_json(ann / "trainval_hico.json", _entries())
    few = split_entries(full, "few_shot", fraction=0.1, seed=0)
    assert few == split_entries(full, "few_shot", fraction=0.1, seed=0)
    builtin.register_all_hico(str(tmp_path))
    try:
        d1 = DatasetCatalog.get("hico_det_train_10pct")
        assert [d["file_name"].split("/")[-1] for d in d1] == [x["file_name"] for x in few]
        zs = DatasetCatalog.get("hico_det_train_uc_rf")
        assert len(zs) == 200
        unseen = set(MetadataCatalog.get("hico_det_train_uc_rf").zero_shot_unseen_triplets)
        for d in zs:
            for r in d["relations"]:
                assert (r["predicate"], d["annotations"][r["object"]]["category_id"]) not in unseen
        # rare / non-rare of the official names: counts (< 10) in trainval_hico.json, as the official code
        md = MetadataCatalog.get("hico_det_test")
        assert md.rare_triplets == [] and sorted(md.nonrare_triplets) == [
            (44, 32),
            (57, 16),
            (87, 16),
            (87, 32),
            (87, 79),
            (116, 79),
        ]
        # an official released file beside the full one is used as it is
        write_json(ann / "trainval_hico_1percent.json", _entries(3))
        assert len(DatasetCatalog.get("hico_det_train_1pct")) == 3
    finally:
        builtin.register_all_hico(builtin.datasets_root())


def test_rare_from_counts_and_sampled_unseen():
    dicts = [
        {
            "annotations": [{"category_id": 0}, {"category_id": 3}],
            "relations": [{"subject": 0, "object": 1, "predicate": 2}] * k
            + [{"subject": 0, "object": -1, "predicate": 5}],
        }
        for k in (4, 7)
    ]
    rare, non_rare = rare_triplets_from_counts(dicts)
    assert non_rare == [(2, 3)] and rare == [(5, -1)]
    e = _entries(90)
    a = sample_unseen_combinations(e, 2, "rare_first", seed=1)
    assert a == sample_unseen_combinations(e, 2, "rare_first", seed=1) and len(a) == 2
    assert (88, 37) not in a  # (88, *) pairs are the frequent ones
    assert sample_unseen_combinations(e, 1, "non_rare_first")[0][0] == 88


def _batch():
    return [
        {
            "object_texts": ["person", "horse"],
            "predicate_texts": ["ride", "look at"],
            "relations": torch.tensor([[0, 1, 7], [0, 1, 3]]),
            "relation_confidence": torch.tensor([1.0, 0.5]),
        },
        {"object_texts": ["man", "person", "kite"], "predicate_texts": ["fly"], "relations": torch.tensor([[1, 2, 0]])},
    ]


def test_fixed_label_sequence_is_the_vocabulary():
    objs, preds = ["person", "horse", "kite", "man"], ["fly", "look at", "ride"]
    s = LabelSequenceBuilder.fixed(objs, preds)(_batch())
    assert s.texts == objs + ["no objects"] + preds and s.num_object_labels == 4 and s.num_relation_labels == 3
    assert s.targets[0]["labels"].tolist() == [0, 1] and s.targets[0]["relations"].tolist() == [[0, 1, 2], [0, 1, 1]]
    assert s.targets[1]["labels"].tolist() == [3, 0, 2] and s.targets[1]["relations"].tolist() == [[1, 2, 0]]
    assert s.targets[0]["relation_confidence"].tolist() == [1.0, 0.5]
    assert s.targets[1]["relation_confidence"].tolist() == [1.0]


def test_pretraining_label_sequence():
    vocab_o = [f"o{i}" for i in range(1000)] + ["person"]
    freq_o = [1000 - i for i in range(1000)] + [5]
    vocab_r = [f"r{i}" for i in range(300)] + ["ride"]
    freq_r = [1] * 300 + [9]
    b = LabelSequenceBuilder.pretraining(vocab_o, vocab_r, freq_o, freq_r, seed=0)
    s = b(_batch(), seed=7)
    assert s.num_object_labels == 333 and len(s.texts) == 501 and s.texts[333] == "no objects"
    assert s.texts[:4] == ["person", "horse", "man", "kite"]  # batch labels first, in order, de-duplicated
    assert s.relation_labels[:3] == ["ride", "look at", "fly"] and s.num_relation_labels == 167
    assert len(set(s.object_labels)) == 333 and len(set(s.relation_labels)) == 167  # without replacement
    assert s.targets[1]["labels"].tolist() == [2, 0, 3] and s.targets[0]["relations"][:, 2].tolist() == [0, 1]
    for t, x in zip(s.targets, _batch()):
        assert [s.relation_labels[p] for p in t["relations"][:, 2].tolist()] == x["predicate_texts"]
        assert [s.object_labels[k] for k in t["labels"].tolist()] == x["object_texts"]
    # deterministic under a seed; frequency-weighted (frequent labels drawn far more often)
    assert b(_batch(), seed=7).texts == s.texts and b(_batch(), seed=8).texts != s.texts
    b2 = LabelSequenceBuilder.pretraining(vocab_o, vocab_r, freq_o, freq_r, seed=0)
    b3 = LabelSequenceBuilder.pretraining(vocab_o, vocab_r, freq_o, freq_r, seed=0)
    run2, run3 = [b2(_batch()).texts for _ in range(2)], [b3(_batch()).texts for _ in range(2)]
    assert run2 == run3 and run2[0] != run2[1]  # same seed, same history -> same sequences
    sampled = s.object_labels[4:]
    ranks = [int(t[1:]) for t in sampled if t.startswith("o")]
    assert sum(r < 500 for r in ranks) > sum(r >= 500 for r in ranks)


def test_pretraining_no_sampling_when_batch_is_larger():
    batch = [
        {
            "object_texts": [f"x{i}" for i in range(6)],
            "predicate_texts": ["p"] * 1,
            "relations": torch.tensor([[0, 1, 0]]),
        }
    ]
    s = build_label_sequence(
        batch,
        object_labels=["a", "b"],
        relation_labels=["q"],
        object_frequencies=[1, 1],
        relation_frequencies=[1],
        num_labels=6,
        mode="pretraining",
    )
    assert s.object_labels == [f"x{i}" for i in range(6)]  # 6 > int(6 * 2/3) = 4: nothing sampled
    assert s.relation_labels == ["p", "q"]  # relation target 2: one negative sampled


def test_label_sequence_for_registered_metadata():
    md = MetadataCatalog.get("hico_det_test")
    b = LabelSequenceBuilder.from_metadata(md)
    s = b(
        [
            {
                "object_texts": ["person", "dog"],
                "predicate_texts": ["no interaction"],
                "relations": torch.tensor([[0, 1, 57]]),
            }
        ]
    )
    assert len(s.texts) == 198 and s.targets[0]["relations"].tolist() == [[0, 1, 57]]
    assert s.targets[0]["labels"].tolist() == [0, 16]
    json.dumps(s.texts)
