"""RLIPv2-ParSeDA R50, HICO-DET few-shot fine-tuning on 10 % of the training images.

Official script: fine_tune_RLIP_ParSeDA_v2_hico_few-shot.sh (``--few_shot_transfer 10``): 10 epochs,
lr drop at 7, lr 1e-4 (backbone and text 1e-5), 8 per GPU x 4 GPUs = 32, 200 queries (no
truncation), no subject classification, RQL. The script's comment "batch 32, 5 epochs" contradicts
its arguments; the arguments are followed.
"""
from .rlipv2_parseda_r50_hico import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.decoder.num_queries = 200
model.head.subject_class = False  # matcher and criterion follow through ${..head.subject_class}

dataloader.train.dataset.names = "hico_det_train_10pct"
dataloader.train.total_batch_size = 32  # 8 per GPU x 4 GPUs
optimizer.lr = 1e-4
optimizer.params.backbone_lr = 1e-5
train.epochs = 10
train.lr_drop = 7
train.truncate_queries = False
train.output_dir = "./output/rlipv2_parseda_r50_hico_10pct"
