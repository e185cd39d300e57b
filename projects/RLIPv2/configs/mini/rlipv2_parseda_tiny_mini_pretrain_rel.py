"""RLIPv2 in miniature: relational pre-training on the relation set alone ("VG" in the paper's ablation).

As ``pretrain/rlipv2_parseda_r50_vg.py`` scaled down: the pre-training label sequences (LSE: the batch's
labels plus frequency-sampled negatives, here up to 32 labels), RQL and RPL, subject classification; the
model and optimisation of the downstream configs, 1,500 iterations of batch 8. The model keeps the downstream
test vocabulary for inference: the evaluation after the last iteration is the NF zero-shot one (pairs whose
subject is not classified "person" dropped, as ``pretrain/rlipv2_parseda_r50_vgcocoo365.py``).
"""
from detectron2.config import LazyCall as L
from detectron2.data import MetadataCatalog

from rlipv2.data import LabelSequenceBuilder

from .rlipv2_parseda_tiny_mini_hico import dataloader, lr_multiplier, model, optimizer, train, world  # noqa: F401

dataloader.train.dataset.names = "synthetic_mini_vg_train"
dataloader.train.mapper.max_relations = 100
dataloader.label_sequence_builder = L(LabelSequenceBuilder.from_metadata)(
    metadata=L(MetadataCatalog.get)(name="${...train.dataset.names}"),
    mode="pretraining",
    num_labels=32,
    object_fraction=1 / 3,  # 10 object names: all of them, and up to 22 relation texts
    sampling="freq",
    seed=0,
)
model.label_sequence_builder = "${dataloader.label_sequence_builder}"
model.criterion.use_rpl = True
model.postprocessor.zero_shot_subject_filter = True

train.max_iter = 1500
train.output_dir = "./output/reproduce_mini/pretrain_rel"
