"""RLIPv2-ParSeDA Swin-T, HICO-DET NF zero-shot (evaluation only) (official: zero_shot_RLIP_ParSeDA_v2_swinT.sh).

As ``rlipv2_parseda_r50_hico_nf_zero_shot.py`` with the Swin-T backbone (drop_path 0.2); batch 16 on 1 GPU.
``train.init_checkpoint=weights/rlipv2_swint_pretrain.pth`` (converted pre-trained model) for ``--eval-only``.
"""
from rlipv2.model_zoo import get_config, use_backbone

from .rlipv2_parseda_r50_hico_nf_zero_shot import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

use_backbone(model, get_config("common/models/rlipv2_parseda_swin_t.py").model)

train.init_checkpoint = "weights/rlipv2_swint_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_swint_hico_nf_zero_shot"
