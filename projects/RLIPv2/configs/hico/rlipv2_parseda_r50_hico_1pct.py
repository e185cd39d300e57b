"""RLIPv2-ParSeDA R50, HICO-DET few-shot fine-tuning on 1 % of the training images
(fine_tune_RLIP_ParSeDA_v2_hico_few-shot.sh with ``--few_shot_transfer 1``; otherwise as 10 %)."""
from .rlipv2_parseda_r50_hico_10pct import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.train.dataset.names = "hico_det_train_1pct"
train.output_dir = "./output/rlipv2_parseda_r50_hico_1pct"
