"""RLIPv2-ParSeDA Swin-T, relational pre-training on VG + COCO + Objects365 pseudo labels.

Official script: train_RLIP_ParSeDA_v2_mixed_vgcocoo365_swinT.sh. As R50 (lr 1.41e-4, backbone and
text 1.41e-5, 20 / 15 epochs) with Swin-T (drop_path 0.2) and 4 per GPU x 8 GPUs x 2 nodes = 64
(the released checkpoint is named "bs64"). Detection initialisation:
``train.init_checkpoint=weights/dab_ddetr_swint_cocoo365.pth``.
"""
from rlipv2.model_zoo import get_config, use_backbone

from .rlipv2_parseda_r50_vgcocoo365 import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

use_backbone(model, get_config("common/models/rlipv2_parseda_swin_t.py").model)

dataloader.train.total_batch_size = 64  # 4 per GPU x 8 GPUs x 2 nodes
train.init_checkpoint = "weights/dab_ddetr_swint_cocoo365.pth"
train.output_dir = "./output/rlipv2_parseda_swint_vgcocoo365"
