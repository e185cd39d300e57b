"""Relational pre-training data: Visual Genome + COCO + Objects365 pseudo labels, and its label sequences.

- ``dataloader.train``: the registered mixture ``vg_coco_o365_rel_train`` (images sampled uniformly
  across the three sources; vocabularies merged by name). The other official mixtures are
  ``vg_coco_rel_train`` (VG + COCO) and ``vg_rel_train`` (VG only): set
  ``dataloader.train.dataset.names``. Images without relations are dropped, at most 100 relations
  per image are kept, pseudo relations below confidence 0.2 are dropped at registration
  (``--relation_threshold 0.20``).
- ``dataloader.label_sequence_builder``: the pre-training label sequence (RLIP's LSE): per batch,
  the de-duplicated merge of its object and relation texts, extended with negatives sampled by
  corpus frequency to 500 labels (333 objects + 167 relations), from the vocabulary of the training
  mixture (``--negative_text_sampling 500 --sampling_stategy freq``). Experiments hand it to the
  model: ``model.label_sequence_builder = "${dataloader.label_sequence_builder}"``.
- ``dataloader.test`` / ``evaluator``: HICO-DET test, i.e. the NF zero-shot evaluation of a
  pre-trained model (the official pre-training does not evaluate; experiments set
  ``train.eval_period`` accordingly).
"""
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from omegaconf import OmegaConf

from rlipv2.data import LabelSequenceBuilder, RelationDatasetMapper, get_relation_dataset_dicts
from rlipv2.evaluation import HICOEvaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_relation_dataset_dicts)(names="vg_coco_o365_rel_train", filter_no_relations=True),
    mapper=L(RelationDatasetMapper)(is_train=True, max_relations=100, image_format="RGB"),
    total_batch_size=32,
    num_workers=8,
)

dataloader.label_sequence_builder = L(LabelSequenceBuilder.from_metadata)(
    # MetadataCatalog.get(name): a string target, since the catalog is an object, not a module function
    metadata=L("detectron2.data.MetadataCatalog.get")(name="${...train.dataset.names}"),
    mode="pretraining",
    num_labels=500,
    object_fraction=2 / 3,
    sampling="freq",
    seed=0,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_relation_dataset_dicts)(names="hico_det_test", filter_no_relations=False),
    mapper=L(RelationDatasetMapper)(is_train=False, image_format="${...train.mapper.image_format}"),
    batch_size=1,
    num_workers=4,
)

dataloader.evaluator = L(HICOEvaluator)(
    dataset_name="${..test.dataset.names}", output_dir=None, protocol="qpic", top_k=100, use_nms=True,
)
