"""R-Tagger with ResNet-50 (official ``scripts/verb_tagger/train_vg_RLIP_ParSeD_v2_tagger_resnet.sh``).

RLIPv2-ParSeD given the ground-truth pairs as queries: ALIF encoder with the element-wise ``GLIP`` gate,
FFN 1024, dropout 0.1, 6 encoder / 3 decoder layers, 200 entity slots (100 pairs), ``vanilla`` relation
queries, subject classification, no matching (``TaggerCriterion``).

Noise: ``box_noise=0.4, label_noise=0.2`` are the official argparse defaults, which the released pseudo-label
files were named after ("Noi24"); the official training script passes ``--box_noise_scale 0.6
--label_noise_scale 0.3`` ("Noi36"): set ``model.queries.box_noise = 0.6`` and ``model.queries.label_noise
= 0.3`` to follow it.
"""
from detectron2.config import LazyCall as L

from rlipv2.modeling import RTagger, TaggerCriterion, TaggerQueryGenerator
from rlipv2.modeling.parsed_decoder import ParSeDDecoder

from .rlipv2_parseda_r50 import model as _base

model = L(RTagger)(
    backbone=_base.backbone,
    in_features=_base.in_features,
    neck=_base.neck,
    position_embedding=_base.position_embedding,
    text_encoder=_base.text_encoder,
    encoder=_base.encoder,
    decoder=L(ParSeDDecoder)(
        num_queries=200,
        num_layers=3,
        d_model=256,
        d_ffn=1024,
        dropout=0.1,
        n_levels=4,
        n_heads=8,
        n_points=4,
        verb_query_tgt_type="vanilla",
        learned_queries=False,
    ),
    queries=L(TaggerQueryGenerator)(
        num_queries="${..decoder.num_queries}",
        d_model="${..decoder.d_model}",
        box_noise=0.4,
        label_noise=0.2,
        faithful_label_noise=False,
        official_attn_mask=False,
        num_heads="${..decoder.n_heads}",
    ),
    head=_base.head,
    criterion=L(TaggerCriterion)(
        weight_dict={"loss_obj_ce": 1.0, "loss_verb_ce": 1.0, "loss_sub_bbox": 2.5, "loss_obj_bbox": 2.5,
                     "loss_sub_giou": 1.0, "loss_obj_giou": 1.0},
        eos_coef=0.1,
        aux_loss=True,
    ),
    pixel_mean=_base.pixel_mean,
    pixel_std=_base.pixel_std,
    text_mask_quirk=False,
    input_format="RGB",
    pair_seed=None,
)
# the tagger's script keeps the default gate ("GLIP": element-wise gamma) and dropout 0.1
model.encoder.gating_mechanism = "GLIP"
model.head.subject_class = True
