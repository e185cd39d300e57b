"""Train the R-Tagger (ResNet-50) on Visual Genome (official
``scripts/verb_tagger/train_vg_RLIP_ParSeD_v2_tagger_resnet.sh``; design notes section 3.1).

20 epochs, lr drop at 15, AdamW lr 1.41e-4 (backbone and text encoder 1.41e-5), weight decay 1e-4, gradient
clipping 0.1, batch 64 (8 per GPU x 8 GPUs in the official run). Label sequence: the batch's labels plus
frequency-sampled negatives up to 500 labels, then "no objects". Each image gives its positive pairs (<= 100)
and random negative pairs up to 100 pair slots (done in the model, ``RTagger.training_pair_slots``).
Initialise from a COCO Deformable-DETR with box refinement (converted), e.g.
``train.init_checkpoint=weights/r50_deformable_detr_refine_converted.pth``; keys that do not exist in a
detector (text encoder, fusion, coord_proj, verb_tgt) start from their initialisation.

Noise: the official argparse defaults 0.4 / 0.2 (the configured values; the released pseudo labels are named
"Noi24"). The official script passes 0.6 / 0.3: ``model.queries.box_noise=0.6 model.queries.label_noise=0.3``.

    python tools/lazyconfig_train_net.py --config-file projects/RLIPv2/configs/tagger/rtagger_r50_vg.py \\
        --num-gpus 8 train.init_checkpoint=INIT.pth
"""
from detectron2.config import LazyCall as L
from detectron2.data import MetadataCatalog, build_detection_train_loader

from rlipv2.data import LabelSequenceBuilder, RelationDatasetMapper, get_relation_dataset_dicts
from rlipv2.model_zoo import get_config

model = get_config("common/models/rtagger_r50.py").model
optimizer = get_config("common/optim.py").optimizer
lr_multiplier = get_config("common/schedule.py").lr_multiplier
train = get_config("common/train.py").train

TRAIN_SET = "vg_rel_train"

model.label_sequence_builder = L(LabelSequenceBuilder.from_metadata)(
    metadata=L(MetadataCatalog.get)(name=TRAIN_SET),
    mode="pretraining",
    num_labels=500,
    object_fraction=2 / 3,
    sampling="freq",
    seed=0,
)

dataloader = dict(
    train=L(build_detection_train_loader)(
        dataset=L(get_relation_dataset_dicts)(names=TRAIN_SET, filter_no_relations=True),
        # the official VGRelTagger keeps the first num_queries (200) relations, then samples 100 pairs
        mapper=L(RelationDatasetMapper)(is_train=True, dataset_name=TRAIN_SET, max_relations=200),
        total_batch_size=64,
        num_workers=8,
    ),
)

optimizer.lr = 1.41e-4
optimizer.params.backbone_lr = 1.41e-5
optimizer.params.text_encoder_lr = 1.41e-5

train.epochs = 20
train.lr_drop = 15
train.output_dir = "./output/rtagger_r50_vg"
