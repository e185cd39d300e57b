"""RLIPv2-ParSeDA Swin-L fine-tuned on HICO-DET (fine_tune_RLIP_ParSeDA_v2_hico_swinL.sh).

As Swin-T with Swin-L (drop_path 0.5), lr 1e-4, 2 per GPU x 2 GPUs x nodes: the script leaves the
node count open; 32 (8 nodes) is the batch its lr goes with in the other scripts.
``train.init_checkpoint=weights/rlipv2_swinl_pretrain.pth``.
"""
from rlipv2.model_zoo import get_config, use_backbone

from .rlipv2_parseda_swint_hico import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

use_backbone(model, get_config("common/models/rlipv2_parseda_swin_l.py").model)

dataloader.train.total_batch_size = 32  # 2 per GPU x 2 GPUs x 8 nodes
train.init_checkpoint = "weights/rlipv2_swinl_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swinl_hico"
