"""RLIPv2-ParSeDA Swin-L, HICO-DET few-shot 10 % (official: fine_tune_RLIP_ParSeDA_v2_hico_swinL_few-shot.sh).

As ``rlipv2_parseda_swint_hico_10pct.py`` with the Swin-L backbone (drop_path 0.5); total batch 32 = 2 per GPU
x 2 GPUs x 8 nodes (node count open in the script; 32 goes with lr 1e-4).
``train.init_checkpoint=weights/rlipv2_swinl_pretrain.pth`` (converted pre-trained model).
"""
from rlipv2.model_zoo import get_config, use_backbone

from .rlipv2_parseda_swint_hico_10pct import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

use_backbone(model, get_config("common/models/rlipv2_parseda_swin_l.py").model)

dataloader.train.total_batch_size = 32  # 2 per GPU x 2 GPUs x 8 nodes
train.init_checkpoint = "weights/rlipv2_swinl_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swinl_hico_10pct"
