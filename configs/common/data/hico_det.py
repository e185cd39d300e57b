"""HICO-DET data: the official training augmentations, the test set and the HICO-DET evaluator.

Experiments set ``dataloader.train.total_batch_size`` (all GPUs together) and
``dataloader.evaluator.output_dir``; the few-shot / zero-shot experiments swap the dataset names
(``hico_det_train_{1pct,10pct,uc_rf,uc_nf}``, ``hico_det_test_{uc_rf,uc_nf}``; datasets/README.md).
"""
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from omegaconf import OmegaConf

from rlipv2.data import RelationDatasetMapper, get_relation_dataset_dicts
from rlipv2.evaluation import HICOEvaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_relation_dataset_dicts)(names="hico_det_train", filter_no_relations=True),
    # official augmentations (flip, colour jitter, multi-scale resize or resize-crop-resize), 100-relation cap
    mapper=L(RelationDatasetMapper)(is_train=True, max_relations=100, image_format="RGB"),
    total_batch_size=16,
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_relation_dataset_dicts)(names="hico_det_test", filter_no_relations=False),
    # short side 800, long side <= 1333
    mapper=L(RelationDatasetMapper)(is_train=False, image_format="${...train.mapper.image_format}"),
    batch_size=1,
    num_workers=4,
)

# official evaluation: QPIC protocol, top-100 triplets after the pairwise triplet NMS (--use_nms_filter)
dataloader.evaluator = L(HICOEvaluator)(
    dataset_name="${..test.dataset.names}",
    output_dir=None,
    protocol="qpic",
    top_k=100,
    use_nms=True,
    zero_shot=False,
)
