"""V-COCO data: trainval with the official augmentations, the test set and the V-COCO evaluator.

``VCOCOEvaluator`` reads the official V-COCO evaluation files found under
``$DETECTRON2_DATASETS/v-coco`` (datasets/README.md) when it is built.
"""
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from omegaconf import OmegaConf

from rlipv2.data import RelationDatasetMapper, get_relation_dataset_dicts
from rlipv2.evaluation import VCOCOEvaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_relation_dataset_dicts)(names="vcoco_trainval", filter_no_relations=True),
    mapper=L(RelationDatasetMapper)(is_train=True, max_relations=100, image_format="RGB"),
    total_batch_size=16,
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_relation_dataset_dicts)(names="vcoco_test", filter_no_relations=False),
    mapper=L(RelationDatasetMapper)(is_train=False, image_format="${...train.mapper.image_format}"),
    batch_size=1,
    num_workers=4,
)

# AP_role Scenario 1 / 2 as s-gupta/v-coco vsrl_eval.py
dataloader.evaluator = L(VCOCOEvaluator)(dataset_name="${..test.dataset.names}", output_dir=None)
