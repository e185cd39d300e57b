"""Paraphrase matching, ordered candidate pairs and grouping on hand-made cases."""
import json
import os

import pytest

from rlipv2.pseudo_labeling.io import IssueLog
from rlipv2.pseudo_labeling.matching import (
    _METADATA_DIR,
    CategoryVocabulary,
    build_candidate_pairs,
    group_candidates,
    load_paraphrases,
    match_entity,
    match_image_triplets,
)
from rlipv2.pseudo_labeling.parsing import CaptionGraph

COCO_CATS = [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}, {"id": 4, "name": "motorcycle"},
             {"id": 19, "name": "horse"}, {"id": 47, "name": "cup"}]


def test_builtin_paraphrase_files_load():
    coco, by = load_paraphrases("coco")
    assert by == "name" and len(coco) == 80 and "man" in coco["person"]
    o365, by = load_paraphrases("o365")
    assert by == "position" and len(o365) == 365


def test_coco_vocabulary_by_name():
    v = CategoryVocabulary.build(COCO_CATS, "coco")
    assert v.names == ["person", "bicycle", "motorcycle", "horse", "cup"]
    assert v.missing == []
    assert "skateboarder" in v.paraphrases[0] and "bike" in v.paraphrases[1]
    assert v.id_to_index[47] == 4


def test_o365_vocabulary_matches_by_position_not_string():
    # The official category list keeps misspellings ("Moniter/TV"); the paraphrase keys are corrected.
    with open(os.path.join(_METADATA_DIR, "o365_categories.json")) as f:
        cats_file = json.load(f)
    shuffled = list(reversed(cats_file))  # category order in the file must not matter: ids decide
    v = CategoryVocabulary.build(shuffled, "o365")
    idx = {c["id"]: i for i, c in enumerate(shuffled)}
    assert v.names[idx[38]] == "monitor/tv" and shuffled[idx[38]]["name"] == "Moniter/TV"
    assert v.names[idx[1]] == "person"
    assert v.names[idx[308]] == "camel"
    assert v.missing == []
    with pytest.raises(ValueError, match="equal counts"):
        CategoryVocabulary.build(cats_file[:10], "o365")


def test_user_paraphrases_and_missing_category(tmp_path):
    p = tmp_path / "para.json"
    p.write_text(json.dumps({"Widget": ["widget", "gizmo"], "robot arm": ["robot arm", "manipulator"]}))
    cats = [{"id": 5, "name": "widget"}, {"id": 7, "name": "Robot  Arm"}, {"id": 9, "name": "Conveyor Belt"}]
    v = CategoryVocabulary.build(cats, str(p))
    assert v.names == ["Widget", "robot arm", "conveyor belt"]
    assert v.paraphrases[1] == ["robot arm", "manipulator"]
    assert v.missing == [2] and v.paraphrases[2] == ["conveyor belt"]
    log = IssueLog()
    v.report_missing(log, cats)
    assert log.counts["category_without_paraphrase"] == 1
    assert "Conveyor Belt" in log.examples["category_without_paraphrase"][0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"widget": "widget"}))
    with pytest.raises(ValueError, match="widget"):
        CategoryVocabulary.build(cats, str(bad))


def test_substring_rule_and_last_match_wins():
    paras = [["person", "man", "skateboarder"], ["bicycle", "bike", "cycle"], ["motorcycle"]]
    assert match_entity("a young skateboarder", [0, 1], paras) == 0
    assert match_entity("the woman", [0], paras) == 0  # "man" is a substring of "woman"
    assert match_entity("a dog", [0, 1, 2], paras) is None
    assert match_entity("a man", [1, 2], paras) is None  # only the image's categories count
    # "cycle" (bicycle) and "motorcycle" both match "a motorcycle": the last candidate in image order wins
    assert match_entity("a motorcycle", [1, 2], paras) == 2
    assert match_entity("a motorcycle", [2, 1], paras) == 1


def test_triplet_filter_and_dedup():
    v = CategoryVocabulary.build(COCO_CATS, "coco")
    g1 = CaptionGraph(["a man", "a horse", "the beach"], [[0, 1, "riding"], [0, 2, "on"]])
    g2 = CaptionGraph(["a woman", "a brown horse"], [[0, 1, "riding"], [1, 0, "next to"]])
    triplets, counts = match_image_triplets([0, 3, 0], [g1, g2], v)
    assert triplets == [(0, "riding", 3), (3, "next to", 0)]  # beach unmatched; duplicate removed
    assert counts == {"parsed_relations": 4, "kept_relations": 3}


def test_ordered_pairs():
    # boxes: person, horse, person
    pairs, texts = build_candidate_pairs([0, 3, 0], [(0, "riding", 3), (0, "next to", 0), (0, "near", 3)])
    assert pairs == [[0, 1], [0, 1], [0, 2], [2, 0], [2, 1], [2, 1]]
    assert texts == ["riding", "near", "next to", "next to", "riding", "near"]
    # a (horse, person) pair is not a (person, horse) candidate: order matters
    assert [1, 0] not in pairs and [1, 2] not in pairs
    assert build_candidate_pairs([0, 3], []) == ([], [])


def test_grouping_by_100_with_deduplicated_texts():
    pairs = [[i % 7, (i + 1) % 7] for i in range(250)]
    texts = ["a" if i < 100 else ("b" if i % 2 else "c") for i in range(250)]
    groups = group_candidates(pairs, texts)
    assert [len(g[0]) for g in groups] == [100, 100, 50]
    assert groups[0][1] == ["a"]
    assert groups[1][1] == ["c", "b"]  # order of first appearance
    assert groups[2][0][0] == pairs[200]
    assert group_candidates([], []) == []
    assert [len(g[0]) for g in group_candidates(pairs[:200], texts[:200])] == [100, 100]
