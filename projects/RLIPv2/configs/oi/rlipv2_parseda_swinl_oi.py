"""RLIPv2-ParSeDA Swin-L fine-tuned on Open Images v6 (fine_tune_RLIP_ParSeDA_v2_oi_sgg_swinL.sh).

As Swin-T with Swin-L (drop_path 0.5); 2 per GPU x 8 GPUs = 16.
``train.init_checkpoint=weights/rlipv2_swinl_pretrain.pth``.
"""
from .....configs.common.models.rlipv2_parseda_swin_l import model as _swin  # noqa: F401
from .rlipv2_parseda_swint_oi import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone = _swin.backbone
model.neck.in_channels = _swin.neck.in_channels

dataloader.train.total_batch_size = 16  # 2 per GPU x 8 GPUs
train.init_checkpoint = "weights/rlipv2_swinl_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swinl_oi"
