"""RLIPv2-ParSeDA Swin-T, HICO-DET NF zero-shot (evaluation only) (official: zero_shot_RLIP_ParSeDA_v2_swinT.sh).

As ``rlipv2_parseda_r50_hico_nf_zero_shot.py`` with the Swin-T backbone (drop_path 0.2); batch 16 on 1 GPU.
``train.init_checkpoint=weights/rlipv2_swint_pretrain.pth`` (converted pre-trained model) for ``--eval-only``.
"""
from .....configs.common.models.rlipv2_parseda_swin_t import model as _swin  # noqa: F401
from .rlipv2_parseda_r50_hico_nf_zero_shot import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone = _swin.backbone
model.in_features = _swin.in_features
model.neck.in_channels = _swin.neck.in_channels
model.position_embedding.offset = _swin.position_embedding.offset

train.init_checkpoint = "weights/rlipv2_swint_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swint_hico_nf_zero_shot"
