"""RLIPv2-ParSeDA Swin-T fine-tuned on V-COCO (fine_tune_RLIP_ParSeDA_v2_vcoco_swinT.sh).

As R50 with Swin-T (drop_path 0.2); 4 per GPU x 4 GPUs x 2 nodes = 32 (the script leaves the node
count open; 32 goes with its lr 1e-4). ``train.init_checkpoint=weights/rlipv2_swint_pretrain.pth``.
"""
from rlipv2.model_zoo import get_config, use_backbone

from .rlipv2_parseda_r50_vcoco import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

use_backbone(model, get_config("common/models/rlipv2_parseda_swin_t.py").model)

dataloader.train.total_batch_size = 32  # 4 per GPU x 4 GPUs x 2 nodes
train.init_checkpoint = "weights/rlipv2_swint_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swint_vcoco"
