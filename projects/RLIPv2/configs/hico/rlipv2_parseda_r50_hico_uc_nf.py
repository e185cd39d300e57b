"""RLIPv2-ParSeDA R50, HICO-DET zero-shot UC-NF (non-rare-first unseen combinations) fine-tuning.

Official script: fine_tune_RLIP_ParSeDA_v2_hico_UC-NF.sh: as UC-RF with the UC-NF split and
10 epochs, lr drop at 7 (8 per GPU x 4 GPUs = 32).
"""
from .rlipv2_parseda_r50_hico_uc_rf import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.train.dataset.names = "hico_det_train_uc_nf"
dataloader.test.dataset.names = "hico_det_test_uc_nf"
train.epochs = 10
train.lr_drop = 7
train.output_dir = "./output/rlipv2_parseda_r50_hico_uc_nf"
