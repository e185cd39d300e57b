"""RLIPv2-ParSeDA Swin-T fine-tuned on HICO-DET (fine_tune_RLIP_ParSeDA_v2_hico_swinT.sh).

As R50 with Swin-T (drop_path 0.2), lr 1e-4 (backbone and text 1e-5), 4 per GPU x 8 GPUs = 32.
``train.init_checkpoint=weights/rlipv2_swint_pretrain.pth``.
"""
from .....configs.common.models.rlipv2_parseda_swin_t import model as _swin  # noqa: F401
from .rlipv2_parseda_r50_hico import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone = _swin.backbone
model.in_features = _swin.in_features
model.neck.in_channels = _swin.neck.in_channels
model.position_embedding.offset = _swin.position_embedding.offset

dataloader.train.total_batch_size = 32  # 4 per GPU x 8 GPUs
optimizer.lr = 1e-4
optimizer.params.backbone_lr = 1e-5
train.init_checkpoint = "weights/rlipv2_swint_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swint_hico"
