"""RLIPv2-ParSeDA R50, relational pre-training on VG + COCO pseudo labels.

Official script: train_RLIP_ParSeDA_v2_mixed_vgcoco_resnet.sh. As VG + COCO + O365 except the data,
8 images per GPU x 8 GPUs = 64, and the detection initialisation (DAB-Deformable-DETR trained on
COCO): ``train.init_checkpoint=weights/dab_ddetr_r50_coco.pth``.
"""
from .rlipv2_parseda_r50_vgcocoo365 import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.train.dataset.names = "vg_coco_rel_train"
dataloader.train.total_batch_size = 64  # 8 per GPU x 8 GPUs
train.init_checkpoint = "weights/dab_ddetr_r50_coco.pth"
train.output_dir = "./output/rlipv2_parseda_r50_vgcoco"
