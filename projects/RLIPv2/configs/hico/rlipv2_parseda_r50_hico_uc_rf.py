"""RLIPv2-ParSeDA R50, HICO-DET zero-shot UC-RF (rare-first unseen combinations) fine-tuning.

Official script: fine_tune_RLIP_ParSeDA_v2_hico_UC-RF.sh: as the full fine-tuning (20 / 15 epochs,
128 queries, subject class, RQL) on the training set without the 120 unseen combinations, lr 1e-4
(backbone and text 1e-5), 8 per GPU x 4 GPUs = 32. Evaluated on the test set with the unseen
combinations in the "rare" slot: mAP unseen / seen / full.
"""
from .rlipv2_parseda_r50_hico import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.train.dataset.names = "hico_det_train_uc_rf"
dataloader.train.total_batch_size = 32  # 8 per GPU x 4 GPUs
dataloader.test.dataset.names = "hico_det_test_uc_rf"
dataloader.evaluator.zero_shot = True
optimizer.lr = 1e-4
optimizer.params.backbone_lr = 1e-5
train.output_dir = "./output/rlipv2_parseda_r50_hico_uc_rf"
