"""RLIPv2-ParSeDA Swin-T, relational pre-training on VG + COCO pseudo labels.

Official script: train_RLIP_ParSeDA_v2_mixed_vgcoco_swinT.sh: lr 1e-4 (backbone and text 1e-5),
4 per GPU x 8 GPUs = 32; detection initialisation on COCO
(``train.init_checkpoint=weights/dab_ddetr_swint_coco.pth``).
"""
from .rlipv2_parseda_swint_vgcocoo365 import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.train.dataset.names = "vg_coco_rel_train"
dataloader.train.total_batch_size = 32  # 4 per GPU x 8 GPUs
optimizer.lr = 1e-4
optimizer.params.backbone_lr = 1e-5
train.init_checkpoint = "weights/dab_ddetr_swint_coco.pth"
train.output_dir = "./output/rlipv2_parseda_swint_vgcoco"
