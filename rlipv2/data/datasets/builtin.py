"""Registration of every official relation dataset, rooted at ``$DETECTRON2_DATASETS``.

Runs on ``import rlipv2``. Registration reads nothing and never fails when files are missing:
the error comes when a dataset is used and names the missing file (layout: datasets/README.md).
"""

from __future__ import annotations

import functools
import os

from .common import datasets_root
from .hico import hico_paths, register_hico_format
from .mixtures import register_mixture
from .open_images import register_open_images
from .visual_genome import register_pseudo_labels, register_vg_format

# name -> (official split file in hico_20160224_det/annotations, kind, fraction | setting)
HICO_DERIVED_SPLITS = {
    "hico_det_train_1pct": ("trainval_hico_1percent.json", "few_shot", 0.01),
    "hico_det_train_10pct": ("trainval_hico_10percent.json", "few_shot", 0.10),
    "hico_det_train_uc_rf": ("trainval_hico_UC-RF.json", "zero_shot", "UC-RF"),
    "hico_det_train_uc_nf": ("trainval_hico_UC-NF.json", "zero_shot", "UC-NF"),
    "hico_det_train_uo": ("trainval_hico_UO.json", "zero_shot", "UO"),
    "hico_det_train_uv": ("trainval_hico_UV.json", "zero_shot", "UV"),
}
ZERO_SHOT_TEST = {
    "hico_det_test_uc_rf": "UC-RF",
    "hico_det_test_uc_nf": "UC-NF",
    "hico_det_test_uo": "UO",
    "hico_det_test_uv": "UV",
}

COCO_PSEUDO_FILE = (
    "RLIPv2_train2017_threshold20_Tagger2_Noi24_20e_Xattnmask_SceneGraph_model_large_caption_nucleus10_thre05.json"
)
O365_PSEUDO_FILE = (
    "RLIPv2_o365trainval_Tagger2_Noi24_20e_Xattnmask_SceneGraph_model_large_caption_nucleus10_thre05_1234_4.json"
)


def register_all_hico(root: str, split_seed: int = 0) -> None:
    """HICO-DET full, few-shot, zero-shot training sets and the test set (+ zero-shot test views)."""
    from ..splits import split_entries

    p = hico_paths(os.path.join(root, "hico_20160224_det"))
    # the official HICO-DET loader drops training images whose relations index missing boxes
    tol = ("relation_index_out_of_range",)
    # rare / non-rare: counts (< 10) in trainval_hico.json as the official code; the packaged
    # standard 138 / 462 split while that file is absent
    rare = dict(rare_from=p["train_json"], rare_fallback_standard=True)
    register_hico_format("hico_det_train", p["train_json"], p["train_images"], tolerate=tol, **rare)
    register_hico_format("hico_det_test", p["test_json"], p["test_images"], **rare)
    for name, (fname, kind, arg) in HICO_DERIVED_SPLITS.items():
        official = os.path.join(p["annotations"], fname)
        kw = {"fraction": arg} if kind == "few_shot" else {"setting": arg}
        entries_fn = functools.partial(
            split_entries, p["train_json"], kind, official_json=official, seed=split_seed, **kw
        )
        extra = (
            {"zero_shot_setting": arg} if kind == "zero_shot" else {"few_shot_fraction": arg, "split_seed": split_seed}
        )
        register_hico_format(name, official, p["train_images"], entries_fn=entries_fn, tolerate=tol, **rare, **extra)
    # test views for zero-shot evaluation: unseen triplets go in the "rare" slot, seen in "non-rare" (official)
    from .common import hico_zero_shot_triplets

    for name, setting in ZERO_SHOT_TEST.items():
        unseen, seen = hico_zero_shot_triplets(setting)
        register_hico_format(
            name,
            p["test_json"],
            p["test_images"],
            zero_shot_setting=setting,
            rare_triplets=unseen,
            nonrare_triplets=seen,
        )


def register_all_vcoco(root: str) -> None:
    base = os.path.join(root, "v-coco")
    ann = os.path.join(base, "annotations")
    corre = os.path.join(ann, "corre_vcoco.npy")
    register_hico_format(
        "vcoco_trainval",
        os.path.join(ann, "trainval_vcoco.json"),
        os.path.join(base, "images", "train2014"),
        variant="vcoco",
        correct_mat_file=corre,
    )
    register_hico_format(
        "vcoco_test",
        os.path.join(ann, "test_vcoco.json"),
        os.path.join(base, "images", "val2014"),
        variant="vcoco",
        correct_mat_file=corre,
        rare_from=os.path.join(ann, "trainval_vcoco.json"),
        vcoco_eval_root=base,
    )


def register_all_open_images(root: str) -> None:
    base = os.path.join(root, "open-imagev6")
    ann = os.path.join(base, "annotations")
    common = dict(
        categories_file=os.path.join(ann, "OI_SGG_trainval_test_categories_dict.json"),
        all_categories_file=os.path.join(ann, "categories_dict.json"),
        rare_from=os.path.join(ann, "OI_SGG_trainval_finetuning.json"),
        triplet_correct_mat_file=os.path.join(ann, "OI_SGG_test_corre_mat.npy"),
    )
    images = os.path.join(base, "images")
    for name, fname in (
        ("oi_v6_sgg_train", "OI_SGG_train_finetuning.json"),
        ("oi_v6_sgg_val", "OI_SGG_val.json"),
        ("oi_v6_sgg_test", "OI_SGG_test.json"),
    ):
        tol = ("relation_index_out_of_range",) if name == "oi_v6_sgg_train" else ()
        register_open_images(name, os.path.join(ann, fname), images, tolerate=tol, **common)


def register_all_pretraining(root: str, relation_threshold: float = 0.2) -> None:
    """Visual Genome, COCO / Objects365 pseudo labels and the official pre-training mixtures."""
    vg = os.path.join(root, "VG")
    # the official VG / pseudo-label loaders clamp boxes to the image silently
    tol = ("box_outside_image",)
    register_vg_format(
        "vg_rel_train",
        os.path.join(vg, "annotations", "scene_graphs_preprocessv1.json"),
        os.path.join(vg, "images"),
        tolerate=tol,
    )
    coco = os.path.join(root, "coco2017")
    register_pseudo_labels(
        "coco2017_pseudo_rel_train",
        os.path.join(coco, "annotations", COCO_PSEUDO_FILE),
        coco,
        source="coco2017",
        tolerate=tol,
        relation_threshold=relation_threshold,
    )
    o365 = os.path.join(root, "Objects365")
    register_pseudo_labels(
        "o365_pseudo_rel_train",
        os.path.join(o365, "annotations", O365_PSEUDO_FILE),
        o365,
        source="o365",
        tolerate=tol,
        relation_threshold=relation_threshold,
    )
    register_mixture("vg_coco_rel_train", ["vg_rel_train", "coco2017_pseudo_rel_train"])
    register_mixture("vg_coco_o365_rel_train", ["o365_pseudo_rel_train", "vg_rel_train", "coco2017_pseudo_rel_train"])


def register_all(root: str | None = None) -> None:
    """Register every official dataset and the default synthetic world under ``root``."""
    from ..synthetic import register_synthetic_world

    explicit_root = root is not None
    root = root if root is not None else datasets_root()
    register_all_hico(root)
    register_all_vcoco(root)
    register_all_open_images(root)
    register_all_pretraining(root)
    register_synthetic_world(root=os.path.join(root, "synthetic_relations") if explicit_root else None)


register_all()
