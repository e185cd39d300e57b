"""Each official format loads from small fixture files into contract-1 dataset dicts."""

import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

import rlipv2  # noqa: F401
from rlipv2.data import register_mixture, register_relation_dataset
from rlipv2.data.datasets.common import MissingDatasetFileError

OFFICIAL_NAMES = [
    "hico_det_train",
    "hico_det_test",
    "hico_det_train_1pct",
    "hico_det_train_10pct",
    "hico_det_train_uc_rf",
    "hico_det_train_uc_nf",
    "hico_det_train_uo",
    "hico_det_train_uv",
    "vcoco_trainval",
    "vcoco_test",
    "oi_v6_sgg_train",
    "oi_v6_sgg_val",
    "oi_v6_sgg_test",
    "vg_rel_train",
    "coco2017_pseudo_rel_train",
    "o365_pseudo_rel_train",
    "vg_coco_rel_train",
    "vg_coco_o365_rel_train",
    "synthetic_hoi_train",
    "synthetic_hoi_test",
    "synthetic_hoi_test_unseen",
    "synthetic_vg_train",
]


def test_all_official_names_registered():
    for n in OFFICIAL_NAMES:
        assert n in DatasetCatalog, n
        assert n in MetadataCatalog, n


def test_hico_metadata_without_reading_files():
    md = MetadataCatalog.get("hico_det_train")
    assert len(md.thing_classes) == 80 and md.thing_classes[0] == "person"
    assert len(md.predicate_classes) == 117 and md.predicate_classes[57] == "no interaction"
    assert md.predicate_classes[4] == "board" and "brush with" in md.predicate_classes
    assert md.thing_dataset_id_to_contiguous_id[90] == 79 and md.predicate_dataset_id_to_contiguous_id[117] == 116
    assert md.correct_mat.shape == (117, 80) and md.correct_mat.sum() == 600
    assert len(md.rare_triplets) == 138 and len(md.nonrare_triplets) == 462
    assert md.subject_class == 0 and md.evaluator_type == "hico"
    uc = MetadataCatalog.get("hico_det_train_uc_rf")
    assert len(uc.zero_shot_unseen_triplets) == 120
    t = MetadataCatalog.get("hico_det_test_uo")
    assert len(t.rare_triplets) == 100 and len(t.nonrare_triplets) == 500
    v = MetadataCatalog.get("vcoco_test")
    assert len(v.thing_classes) == 81 and v.thing_classes[-1] == "missing objects" and len(v.predicate_classes) == 29


def test_missing_file_error_names_the_file(tmp_path, registered, monkeypatch):
    register_relation_dataset("t_missing", str(tmp_path / "nope.json"), str(tmp_path), format="hico")
    registered.append("t_missing")
    with pytest.raises(MissingDatasetFileError, match="nope.json"):
        DatasetCatalog.get("t_missing")
    # official names under an empty root fail on use, naming the file
    from rlipv2.data.datasets import builtin

    builtin.register_all_hico(str(tmp_path))
    with pytest.raises(MissingDatasetFileError, match="trainval_hico.json"):
        DatasetCatalog.get("hico_det_train_1pct")
    builtin.register_all_hico(rlipv2.data.datasets.datasets_root())


def test_hico_format(hico_files, registered):
    js, root = hico_files
    register_relation_dataset("t_hico", js, root, format="hico")
    registered.append("t_hico")
    dicts = DatasetCatalog.get("t_hico")
    assert len(dicts) == 2
    d = dicts[0]
    assert d["file_name"] == os.path.join(root, "HICO_train2015_00000001.jpg")
    assert (d["height"], d["width"]) == (48, 64) and d["image_id"] == 0
    assert [a["category_id"] for a in d["annotations"]] == [0, 16, 32]  # person, dog, sports ball
    assert d["annotations"][0]["bbox_mode"] == BoxMode.XYXY_ABS and d["annotations"][0]["bbox"] == [1, 2, 30, 40]
    assert d["relations"] == [
        {"subject": 0, "object": 1, "predicate": 57, "confidence": 1.0},
        {"subject": 0, "object": 2, "predicate": 44, "confidence": 1.0},
    ]
    assert dicts[1]["relations"][0]["predicate"] == 116 and dicts[1]["annotations"][1]["category_id"] == 79
    md = MetadataCatalog.get("t_hico")
    # rare from this file's own counts (< 10)
    assert sorted(md.rare_triplets) == [(44, 32), (57, 16), (116, 79)] and md.nonrare_triplets == []


def test_vcoco_missing_object(vcoco_files, registered):
    js, root = vcoco_files
    register_relation_dataset("t_vcoco", js, root, format="vcoco")
    registered.append("t_vcoco")
    (d,) = DatasetCatalog.get("t_vcoco")
    assert d["image_id"] == 42
    assert [a["category_id"] for a in d["annotations"]] == [0, 2]
    assert [(r["subject"], r["object"], r["predicate"]) for r in d["relations"]] == [(0, -1, 1), (0, 1, 0)]
    md = MetadataCatalog.get("t_vcoco")
    assert md.predicate_classes[1] == "stand" and md.missing_object_class == 80 and md.evaluator_type == "vcoco"


def test_open_images_format(oi_files, registered):
    js, root, cats, all_cats = oi_files
    register_relation_dataset("t_oi", js, root, format="oi", categories_file=cats, all_categories_file=all_cats)
    registered.append("t_oi")
    md = MetadataCatalog.get("t_oi")
    assert "_lazy_fields" not in md.as_dict()
    (d,) = DatasetCatalog.get("t_oi")
    assert md.thing_classes == ["Man", "Guitar", "Car"] and md.predicate_classes == ["plays", "holds", "at"]
    assert md.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2}
    assert [a["category_id"] for a in d["annotations"]] == [0, 1]  # file ids 1, 2 index the 601-class list
    assert d["relations"] == [{"subject": 0, "object": 1, "predicate": 0, "confidence": 1.0}]
    assert md.evaluator_type == "oi"


def test_vg_format_free_form_vocab(vg_files, registered):
    js, root = vg_files
    register_relation_dataset("t_vg", js, root, format="vg")
    registered.append("t_vg")
    md = MetadataCatalog.get("t_vg")
    assert md.thing_classes == ["man", "horse"] and md.object_frequencies == [3, 1]  # lazily computed
    assert md.predicate_classes == ["riding", "next to"] and md.predicate_frequencies == [1, 1]
    d7, d8 = DatasetCatalog.get("t_vg")
    assert d7["file_name"] == os.path.join(root, "7.jpg") and d7["image_id"] == 7
    assert d7["annotations"][1]["bbox"] == [25.0, 5.0, 55.0, 25.0]
    assert [(r["subject"], r["object"], r["predicate"]) for r in d7["relations"]] == [(0, 1, 0), (2, 0, 1)]
    assert d8["relations"] == []


def test_pseudo_labels_threshold(coco_pseudo_files, registered):
    js, root = coco_pseudo_files
    from rlipv2.data.datasets import register_pseudo_labels

    register_pseudo_labels("t_pseudo", js, root, source="coco2017")  # default threshold 0.2
    registered.append("t_pseudo")
    d7, _ = DatasetCatalog.get("t_pseudo")
    assert d7["file_name"] == os.path.join(root, "train2017", "000000000007.jpg")
    assert [(r["predicate"], r["confidence"]) for r in d7["relations"]] == [(0, 0.9)]
    md = MetadataCatalog.get("t_pseudo")
    assert md.predicate_classes == ["riding"] and md.relation_threshold == 0.2


def test_mixture_merges_vocabularies(vg_files, coco_pseudo_files, hico_files, registered):
    register_relation_dataset("t_mix_vg", *vg_files, format="vg")
    register_relation_dataset(
        "t_mix_co", *coco_pseudo_files, format="vg", image_source="coco2017", relation_threshold=0.0
    )
    register_relation_dataset("t_mix_hico", *hico_files, format="hico")
    register_mixture("t_mix", ["t_mix_vg", "t_mix_co", "t_mix_hico"])
    registered.extend(["t_mix_vg", "t_mix_co", "t_mix_hico", "t_mix"])
    dicts = DatasetCatalog.get("t_mix")
    md = MetadataCatalog.get("t_mix")
    assert len(dicts) == 6
    assert md.thing_classes[:2] == ["man", "horse"] and md.object_frequencies[0] == 6
    assert "person" in md.thing_classes and "no interaction" in md.predicate_classes
    for d in dicts:  # every record's texts survive the re-indexing
        src = MetadataCatalog.get(d["source_dataset"])
        orig = {x["image_id"]: x for x in DatasetCatalog.get(d["source_dataset"])}[d["image_id"]]
        assert [md.thing_classes[a["category_id"]] for a in d["annotations"]] == [
            src.thing_classes[a["category_id"]] for a in orig["annotations"]
        ]
        assert [md.predicate_classes[r["predicate"]] for r in d["relations"]] == [
            src.predicate_classes[r["predicate"]] for r in orig["relations"]
        ]


def test_balance_repeats():
    from rlipv2.data.datasets.mixtures import balance_repeats

    assert balance_repeats([600, 2400]) == [4, 1]
    assert balance_repeats([600, 1985]) == [3, 1]  # whole repeats, rounded
    assert balance_repeats([7, 7, 0]) == [1, 1, 1]
    assert balance_repeats([]) == []


def test_balanced_mixture_repeats_the_smaller_part(vg_files, hico_files, registered):
    register_relation_dataset("t_bal_vg", *vg_files, format="vg")
    register_relation_dataset("t_bal_hico", *hico_files, format="hico")
    sizes = {n: len(DatasetCatalog.get(n)) for n in ("t_bal_vg", "t_bal_hico")}
    register_mixture("t_bal", ["t_bal_vg", "t_bal_hico"], balanced=True)
    register_mixture("t_unbal", ["t_bal_vg", "t_bal_hico"])
    registered.extend(["t_bal_vg", "t_bal_hico", "t_bal", "t_unbal"])
    from rlipv2.data.datasets.mixtures import balance_repeats

    repeats = dict(zip(sizes, balance_repeats(list(sizes.values()))))
    counts = {n: sum(d["source_dataset"] == n for d in DatasetCatalog.get("t_bal")) for n in sizes}
    assert counts == {n: sizes[n] * repeats[n] for n in sizes}
    assert len(DatasetCatalog.get("t_unbal")) == sum(sizes.values())
    assert MetadataCatalog.get("t_bal").balanced is True and MetadataCatalog.get("t_unbal").balanced is False
    # same vocabulary either way
    assert MetadataCatalog.get("t_bal").predicate_classes == MetadataCatalog.get("t_unbal").predicate_classes


def test_custom_vocabulary_files(tmp_path, registered):
    from relation_fixtures import write_image, write_json

    objs = write_json(tmp_path / "objs.json", {"human": 1, "apple": 7})
    verbs = tmp_path / "verbs.txt"
    verbs.write_text("001  eat\n002  look_at")
    np.save(tmp_path / "cm.npy", np.ones((2, 2)))
    write_image(str(tmp_path / "img" / "a.jpg"))
    js = write_json(
        tmp_path / "a.json",
        [
            {
                "file_name": "a.jpg",
                "annotations": [{"bbox": [0, 0, 10, 10], "category_id": 1}, {"bbox": [5, 5, 9, 9], "category_id": 7}],
                "hoi_annotation": [{"subject_id": 0, "object_id": 1, "category_id": 2}],
            }
        ],
    )
    register_relation_dataset(
        "t_custom",
        js,
        str(tmp_path / "img"),
        format="hico",
        object_names_file=objs,
        verb_names_file=str(verbs),
        correct_mat_file=str(tmp_path / "cm.npy"),
    )
    registered.append("t_custom")
    md = MetadataCatalog.get("t_custom")
    assert md.thing_classes == ["human", "apple"] and md.predicate_classes == ["eat", "look at"]
    assert md.correct_mat.shape == (2, 2) and md.subject_class == 0
    (d,) = DatasetCatalog.get("t_custom")
    assert d["annotations"][1]["category_id"] == 1 and d["relations"][0]["predicate"] == 1


def test_lazy_metadata_survives_pickling(vg_files, registered):
    import pickle

    register_relation_dataset("t_pick", *vg_files, format="vg")
    registered.append("t_pick")
    m = pickle.loads(pickle.dumps(MetadataCatalog.get("t_pick")))  # e.g. sent to a spawned worker
    assert m.thing_classes == ["man", "horse"] and m.predicate_frequencies == [1, 1]
    assert "thing_classes" not in MetadataCatalog.get("t_pick").__dict__  # the original is still lazy


def test_registration_config_nodes(hico_files, vg_files, registered):
    """registered_dataset / registered_mixture: LazyConfig nodes that register when instantiated (in every
    process that builds the loader), idempotent for the same arguments, an error for others."""
    from detectron2.config import LazyCall as L
    from detectron2.config import instantiate

    from rlipv2.data import registered_dataset, registered_mixture

    js, root = hico_files
    vg_js, vg_root = vg_files
    node = L(registered_mixture)(
        name="t_node_mix",
        parts=[L(registered_dataset)(name="t_node_hico", json_file=js, image_root=root, format="hico"),
               L(registered_dataset)(name="t_node_vg", json_file=vg_js, image_root=vg_root, format="vg")],
    )
    registered.extend(["t_node_mix", "t_node_hico", "t_node_vg"])
    assert "t_node_mix" not in DatasetCatalog
    assert instantiate(node) == "t_node_mix"
    assert instantiate(node) == "t_node_mix"  # again: nothing changes
    assert len(DatasetCatalog.get("t_node_mix")) == len(DatasetCatalog.get("t_node_hico")) + len(
        DatasetCatalog.get("t_node_vg"))
    with pytest.raises(ValueError, match="t_node_hico.*other arguments"):
        registered_dataset("t_node_hico", js, root + "_elsewhere", format="hico")
    with pytest.raises(ValueError, match="already registered .by other code"):
        registered_dataset("hico_det_train", js, root)
