"""RLIPv2-ParSeDA Swin-L, HICO-DET NF zero-shot (evaluation only) (official: zero_shot_RLIP_ParSeDA_v2_swinL.sh).

As ``rlipv2_parseda_swint_hico_nf_zero_shot.py`` with the Swin-L backbone (drop_path 0.5); batch 16 on 1 GPU.
``train.init_checkpoint=weights/rlipv2_swinl_pretrain.pth`` (converted pre-trained model) for ``--eval-only``.
"""
from rlipv2.model_zoo import get_config, use_backbone

from .rlipv2_parseda_swint_hico_nf_zero_shot import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

use_backbone(model, get_config("common/models/rlipv2_parseda_swin_l.py").model)

train.init_checkpoint = "weights/rlipv2_swinl_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swinl_hico_nf_zero_shot"
