"""RLIPv2-ParSeDA R50 fine-tuned on V-COCO.

Official script: fine_tune_RLIP_ParSeDA_v2_vcoco_vgcocoo365.sh (the VG + COCO + O365 pre-trained
model the README reports): 20 epochs, lr drop at 15, lr 1e-4 (backbone and text 1e-5), 8 per GPU x
4 GPUs = 32, 200 queries, subject classification, neither RQL (``--giou_verb_label`` is commented
out) nor RPL, fixed label sequence (80 objects + "missing objects" + "no objects" + 29 verbs).
``train.init_checkpoint=weights/rlipv2_r50_pretrain.pth``.
"""
from rlipv2.model_zoo import get_config

dataloader = get_config("common/data/vcoco.py").dataloader
model = get_config("common/models/rlipv2_parseda_r50.py").model
optimizer = get_config("common/optim.py").optimizer
lr_multiplier = get_config("common/schedule.py").lr_multiplier
train = get_config("common/train.py").train

model.decoder.num_queries = 200
model.head.subject_class = True
model.criterion.use_rql = False
model.criterion.use_rpl = False
model.metadata_dataset = "${dataloader.test.dataset.names}"
model.postprocessor.subject_category_id = 0  # "person"
model.postprocessor.zero_shot_subject_filter = False

dataloader.train.total_batch_size = 32  # 8 per GPU x 4 GPUs
dataloader.evaluator.output_dir = "${train.output_dir}"

optimizer.lr = 1e-4
optimizer.params.backbone_lr = 1e-5
optimizer.params.text_encoder_lr = "${.backbone_lr}"

train.epochs = 20
train.lr_drop = 15
train.truncate_queries = False  # 200 queries, as the pre-trained model
train.init_checkpoint = "weights/rlipv2_r50_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_r50_vcoco"
