"""RLIPv2-ParSeDA Swin-L, relational pre-training on VG + COCO pseudo labels.

Official script: train_RLIP_ParSeDA_v2_mixed_vgcoco_swinL.sh: lr 1e-4 (backbone and text 1e-5),
2 per GPU x 8 GPUs x 2 nodes = 32 (the script leaves the node count open; 32 is the batch its lr
goes with in the other scripts); ``train.init_checkpoint=weights/dab_ddetr_swinl_coco.pth``.
"""
from .rlipv2_parseda_swinl_vgcocoo365 import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.train.dataset.names = "vg_coco_rel_train"
dataloader.train.total_batch_size = 32  # 2 per GPU x 8 GPUs x 2 nodes
optimizer.lr = 1e-4
optimizer.params.backbone_lr = 1e-5
train.init_checkpoint = "weights/dab_ddetr_swinl_coco.pth"
train.output_dir = "./output/rlipv2_parseda_swinl_vgcoco"
