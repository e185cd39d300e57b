"""RLIPv2 in miniature: relational pre-training on the relation set + the pseudo-labelled caption set
("VG + COCO" in the paper's ablation), with the same schedule as the relation set alone (1,500 iterations).

The pseudo-labels come from ``tools/pseudo_label.py`` (R-Tagger trained on the relation set); give their
file with ``paths.pseudo_labels=...``. Relations below confidence 0.2 are dropped when read, as in
pre-training on COCO / Objects365 pseudo-labels.

The mixture is balanced (``balanced=True``): the 600 relation-set images are repeated so that they are drawn
about as often as the ~2,000 pseudo-labelled ones, the paper's proportion (VG 108k : COCO 118k images). The
plain concatenation (1 : 4) spends four iterations in five on the noisier pseudo-labels and gave a lower NF
zero-shot mAP than the relation set alone (25.0 vs 28.5; docs/reproduction_mini.md). Both parts are registered
when the loader is built (config nodes), so the file may be written after this config is loaded.
"""
from detectron2.config import LazyCall as L

from rlipv2.data import registered_dataset, registered_mixture
from rlipv2.data.synthetic import SyntheticWorldConfig, caption_set_files

from .rlipv2_parseda_tiny_mini_pretrain_rel import dataloader, lr_multiplier, model, optimizer, train, world  # noqa: F401

paths = dict(pseudo_labels="./output/reproduce_mini/pseudo_labels/pseudo_relations.json")

dataloader.train.dataset.names = L(registered_mixture)(
    name="synthetic_mini_rel_pseudo_train",
    parts=[
        "synthetic_mini_vg_train",
        L(registered_dataset)(
            name="synthetic_mini_coco_pseudo",
            json_file="${paths.pseudo_labels}",
            image_root=caption_set_files(SyntheticWorldConfig(**{k: v for k, v in world.items() if k != "prefix"}))[
                "images"
            ],
            format="vg",
            image_source="coco2017",
            relation_threshold=0.2,
        ),
    ],
    balanced=True,
)
train.output_dir = "./output/reproduce_mini/pretrain_rel_pseudo"
