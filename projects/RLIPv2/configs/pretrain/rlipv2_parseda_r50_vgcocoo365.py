"""RLIPv2-ParSeDA R50, relational pre-training on VG + COCO + Objects365 pseudo labels.

Official script: train_RLIP_ParSeDA_v2_mixed_vgcocoo365_resnet.sh. 20 epochs, lr drop at 15,
lr 1.41e-4 (backbone and text encoder 1.41e-5), 4 images per GPU x 8 GPUs = 32, 200 queries,
subject classification, LSE (500 labels, frequency-sampled negatives) + RQL + RPL.

Initialised from DAB-Deformable-DETR detection weights (COCO + Objects365), converted to this model
(projects/RLIPv2/README.md): ``train.init_checkpoint=weights/dab_ddetr_r50_cocoo365.pth``.
The text encoder is "roberta-base" by name; offline, point ``model.text_encoder.name_or_path`` to a
local copy.
"""
from rlipv2.model_zoo import get_config

dataloader = get_config("common/data/vg_pretrain.py").dataloader
model = get_config("common/models/rlipv2_parseda_r50.py").model
optimizer = get_config("common/optim.py").optimizer
lr_multiplier = get_config("common/schedule.py").lr_multiplier
train = get_config("common/train.py").train

# --- model: the pre-training criterion of the common model config (RQL + RPL, subject class), 200 queries
model.decoder.num_queries = 200
model.head.subject_class = True
model.criterion.use_rql = True
model.criterion.use_rpl = True
model.label_sequence_builder = "${dataloader.label_sequence_builder}"
# inference vocabulary (evaluation on HICO-DET, NF zero-shot): the test set's labels
model.metadata_dataset = "${dataloader.test.dataset.names}"
model.postprocessor.zero_shot_subject_filter = True

# --- data
dataloader.train.dataset.names = "vg_coco_o365_rel_train"
dataloader.train.total_batch_size = 32  # 4 per GPU x 8 GPUs
dataloader.evaluator.output_dir = "${train.output_dir}"

# --- optimisation (AdamW, wd 1e-4, clip 0.1)
optimizer.lr = 1.41e-4
optimizer.params.backbone_lr = 1.41e-5
optimizer.params.text_encoder_lr = "${.backbone_lr}"

# --- schedule and run
train.epochs = 20
train.lr_drop = 15
# the official pre-training does not evaluate. Detectron2 still evaluates once after the last
# iteration (HICO-DET NF zero-shot, needs the HICO-DET test set); model_final.pth is written before it.
train.eval_period = 0
train.truncate_queries = True  # detection weights may have more query rows (official filter_ckpt_tgt_anchor)
train.init_checkpoint = "weights/dab_ddetr_r50_cocoo365.pth"
train.output_dir = "./output/rlipv2_parseda_r50_vgcocoo365"
