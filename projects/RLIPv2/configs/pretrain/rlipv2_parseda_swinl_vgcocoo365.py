"""RLIPv2-ParSeDA Swin-L, relational pre-training on VG + COCO + Objects365 pseudo labels.

Official script: train_RLIP_ParSeDA_v2_mixed_vgcocoo365_swinL.sh. As Swin-T with Swin-L
(drop_path 0.5) and 2 per GPU x 8 GPUs x 4 nodes = 64 ("bs64"). Detection initialisation:
``train.init_checkpoint=weights/dab_ddetr_swinl_cocoo365.pth``.
"""
from rlipv2.model_zoo import get_config, use_backbone

from .rlipv2_parseda_swint_vgcocoo365 import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

use_backbone(model, get_config("common/models/rlipv2_parseda_swin_l.py").model)

dataloader.train.total_batch_size = 64  # 2 per GPU x 8 GPUs x 4 nodes
train.init_checkpoint = "weights/dab_ddetr_swinl_cocoo365.pth"
train.output_dir = "./output/rlipv2_parseda_swinl_vgcocoo365"
