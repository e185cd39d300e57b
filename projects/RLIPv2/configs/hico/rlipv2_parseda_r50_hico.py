"""RLIPv2-ParSeDA R50 fine-tuned on HICO-DET (full training set).

Official script: fine_tune_RLIP_ParSeDA_v2_hico.sh. 20 epochs, lr drop at 15, lr 1.41e-4 (backbone
and text encoder 1.41e-5), 8 images per GPU x 8 GPUs = 64, 128 queries, subject classification,
RQL (``--giou_verb_label``), no RPL, fixed label sequence (80 objects + "no objects" + 117 verbs).

Initialised from the converted pre-trained model (VG + COCO + O365, 200 queries; the first 128 query
rows are kept as in the official code): ``train.init_checkpoint=weights/rlipv2_r50_pretrain.pth``.
"""
from rlipv2.model_zoo import get_config

dataloader = get_config("common/data/hico_det.py").dataloader
model = get_config("common/models/rlipv2_parseda_r50.py").model
optimizer = get_config("common/optim.py").optimizer
lr_multiplier = get_config("common/schedule.py").lr_multiplier
train = get_config("common/train.py").train

# --- model: 128 queries, RQL only, fixed HICO-DET vocabulary
model.decoder.num_queries = 128
model.head.subject_class = True
model.criterion.use_rql = True
model.criterion.use_rpl = False
model.metadata_dataset = "${dataloader.test.dataset.names}"
model.postprocessor.subject_category_id = 0  # "person"
model.postprocessor.zero_shot_subject_filter = False

# --- data
dataloader.train.dataset.names = "hico_det_train"
dataloader.train.total_batch_size = 64  # 8 per GPU x 8 GPUs
dataloader.test.dataset.names = "hico_det_test"
dataloader.evaluator.output_dir = "${train.output_dir}"

# --- optimisation
optimizer.lr = 1.41e-4
optimizer.params.backbone_lr = 1.41e-5
optimizer.params.text_encoder_lr = "${.backbone_lr}"

# --- schedule and run
train.epochs = 20
train.lr_drop = 15
train.truncate_queries = True  # 200-query pre-trained weights -> first 128 rows (official)
train.init_checkpoint = "weights/rlipv2_r50_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_r50_hico"
