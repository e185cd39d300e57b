"""AdamW with RLIPv2's three parameter groups (official: wd 1e-4, lr 1e-4, backbone and text 1e-5).

The train script sets ``optimizer.params.model``. Override the group lrs per experiment, e.g. the
pre-training recipe: ``optimizer.lr=1.41e-4 optimizer.params.backbone_lr=1.41e-5
optimizer.params.text_encoder_lr=1.41e-5``.
"""
import torch
from detectron2.config import LazyCall as L

from rlipv2.engine.optimizer import get_rlipv2_param_groups

AdamW = L(torch.optim.AdamW)(
    params=L(get_rlipv2_param_groups)(
        model=None,
        lr="${..lr}",
        backbone_lr=1e-5,
        text_encoder_lr=1e-5,
        weight_decay="${..weight_decay}",
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=1e-4,
)

optimizer = AdamW
