"""RLIPv2-ParSeDA R50, relational pre-training on Visual Genome only.

The official repository has no ParSeDA R50 VG-only script: this follows the R50 VG + COCO script
(train_RLIP_ParSeDA_v2_mixed_vgcoco_resnet.sh) with ``--dataset_file vg``, as the Swin VG scripts do.
"""
from .rlipv2_parseda_r50_vgcoco import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.train.dataset.names = "vg_rel_train"
train.output_dir = "./output/rlipv2_parseda_r50_vg"
