"""RLIPv2-ParSeDA Swin-T, relational pre-training on Visual Genome only (train_RLIP_ParSeDA_v2_vg_swinT.sh)."""
from .rlipv2_parseda_swint_vgcoco import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.train.dataset.names = "vg_rel_train"
train.output_dir = "./output/rlipv2_parseda_swint_vg"
