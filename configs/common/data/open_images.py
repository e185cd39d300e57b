"""Open Images v6 scene-graph data (288 objects, 30 predicates) and the Open Images SGG evaluator."""
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from omegaconf import OmegaConf

from rlipv2.data import RelationDatasetMapper, get_relation_dataset_dicts
from rlipv2.evaluation import OISGGEvaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_relation_dataset_dicts)(names="oi_v6_sgg_train", filter_no_relations=True),
    mapper=L(RelationDatasetMapper)(is_train=True, max_relations=100, image_format="RGB"),
    total_batch_size=16,
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_relation_dataset_dicts)(names="oi_v6_sgg_test", filter_no_relations=False),
    mapper=L(RelationDatasetMapper)(is_train=False, image_format="${...train.mapper.image_format}"),
    batch_size=1,
    num_workers=4,
)

# R@50 / wmAP_rel / wmAP_phr / score_wtd, the official RLIPv2 oi_sgg_eval.py protocol (triplet and phrase NMS)
dataloader.evaluator = L(OISGGEvaluator)(
    dataset_name="${..test.dataset.names}", output_dir=None, protocol="rlipv2", use_nms=True,
)
