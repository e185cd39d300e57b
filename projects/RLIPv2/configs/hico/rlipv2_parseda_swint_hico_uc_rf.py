"""RLIPv2-ParSeDA Swin-T, HICO-DET zero-shot UC-RF (official: fine_tune_RLIP_ParSeDA_v2_hico_swinT_UC-RF.sh).

As ``rlipv2_parseda_r50_hico_uc_rf.py`` with the Swin-T backbone (drop_path 0.2); total batch 16 = 4 per GPU x 4 GPUs.
``train.init_checkpoint=weights/rlipv2_swint_pretrain.pth`` (converted pre-trained model).
"""
from rlipv2.model_zoo import get_config, use_backbone

from .rlipv2_parseda_r50_hico_uc_rf import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

use_backbone(model, get_config("common/models/rlipv2_parseda_swin_t.py").model)

dataloader.train.total_batch_size = 16  # 4 per GPU x 4 GPUs
train.init_checkpoint = "weights/rlipv2_swint_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swint_hico_uc_rf"
