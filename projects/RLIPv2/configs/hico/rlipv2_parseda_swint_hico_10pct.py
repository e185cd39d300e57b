"""RLIPv2-ParSeDA Swin-T, HICO-DET few-shot 10 % (official: fine_tune_RLIP_ParSeDA_v2_hico_swinT_few-shot.sh).

As ``rlipv2_parseda_r50_hico_10pct.py`` with the Swin-T backbone (drop_path 0.2); total batch 16 = 4 per GPU x 4 GPUs.
``train.init_checkpoint=weights/rlipv2_swint_pretrain.pth`` (converted pre-trained model).
"""
from .....configs.common.models.rlipv2_parseda_swin_t import model as _swin  # noqa: F401
from .rlipv2_parseda_r50_hico_10pct import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone = _swin.backbone
model.in_features = _swin.in_features
model.neck.in_channels = _swin.neck.in_channels
model.position_embedding.offset = _swin.position_embedding.offset

dataloader.train.total_batch_size = 16  # 4 per GPU x 4 GPUs
train.init_checkpoint = "weights/rlipv2_swint_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swint_hico_10pct"
