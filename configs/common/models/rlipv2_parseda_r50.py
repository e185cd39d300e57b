"""RLIPv2-ParSeDA with a ResNet-50 backbone (official hyperparameters; 200 queries as in pre-training).

The criterion is the pre-training one (RQL + RPL, subject classification); fine-tuning configs set
``model.criterion.use_rpl = False`` (and ``use_rql = False`` for V-COCO), HICO-DET full / UC fine-tuning
uses ``model.decoder.num_queries = 128``, and SGG configs swap the post-processor.
"""
from detectron2.config import LazyCall as L

from rlipv2.modeling import (
    ALIFEncoder,
    HFTextEncoder,
    HOIPostProcessor,
    HungarianMatcherHOI,
    InputProjection,
    LabelTextHead,
    ParSeDADecoder,
    PositionEmbeddingSine,
    RLIPv2,
    SetCriterionHOI,
    build_frozen_resnet,
)

model = L(RLIPv2)(
    backbone=L(build_frozen_resnet)(depth=50, out_features=["res3", "res4", "res5"], freeze_at=2),
    in_features=["res3", "res4", "res5"],
    neck=L(InputProjection)(
        in_channels=[512, 1024, 2048],
        hidden_dim="${..decoder.d_model}",
        num_feature_levels="${..decoder.n_levels}",
    ),
    # ResNet path of the official code: no -0.5 offset (the Swin configs set offset=-0.5)
    position_embedding=L(PositionEmbeddingSine)(num_pos_feats=128, temperature=10000, normalize=True, offset=0.0),
    text_encoder=L(HFTextEncoder)(
        name_or_path="roberta-base", pretrained=True, pooling="pooler", output_dim=768,
        attn_implementation="eager", cache_inference=True,
    ),
    encoder=L(ALIFEncoder)(
        lang_config="${..text_encoder.name_or_path}",
        d_model="${..decoder.d_model}",
        d_ffn="${..decoder.d_ffn}",
        dropout="${..decoder.dropout}",
        n_levels="${..decoder.n_levels}",
        n_heads="${..decoder.n_heads}",
        n_points=4,
        num_layers=6,
        lang_dim="${..text_encoder.output_dim}",
        fusion_interval=2,
        fusion_last_level=True,
        lang_aux_loss=True,
        fusion_embed_dim=2048,
        fusion_heads=8,
        fusion_dropout=0.1,
        gating_mechanism="VXAc",
        # official behaviour: padded pixels/labels are NOT masked in the fusion attention
        mask_fusion_padding=False,
        fusion_use_sdpa=True,
        resizer_dropout=0.1,
    ),
    decoder=L(ParSeDADecoder)(
        num_queries=200,
        num_layers=3,
        d_model=256,
        d_ffn=2048,
        dropout=0.0,
        n_levels=4,
        n_heads=8,
        n_points=4,
        verb_query_tgt_type="vanilla_MBF",
        mbf_cardinality=16,
    ),
    head=L(LabelTextHead)(hidden_dim="${..decoder.d_model}", prior_prob=0.01, subject_class=True),
    criterion=L(SetCriterionHOI)(
        matcher=L(HungarianMatcherHOI)(
            cost_obj_class=1.0, cost_verb_class=1.0, cost_bbox=2.5, cost_giou=1.0,
            subject_class="${...head.subject_class}",
        ),
        weight_dict={"loss_obj_ce": 1.0, "loss_verb_ce": 1.0, "loss_sub_bbox": 2.5, "loss_obj_bbox": 2.5,
                     "loss_sub_giou": 1.0, "loss_obj_giou": 1.0},
        eos_coef=0.1,
        subject_class="${..head.subject_class}",
        use_rql=True,
        use_rpl=True,
        rpl_threshold=0.3,
        aux_loss=True,
    ),
    postprocessor=L(HOIPostProcessor)(subject_category_id=0),
    pixel_mean=[123.675, 116.28, 103.53],
    pixel_std=[58.395, 57.12, 57.375],
    text_mask_quirk=False,
    faithful_hoi_subject_label=False,
    input_format="RGB",
)
