"""RLIPv2-ParSeD with ResNet-50 (plain Deformable-DETR decoders; official ``--RLIP_ParSeD_v2`` settings:
200 queries, FFN 1024, dropout 0.1, ``vanilla_MBF`` relation queries). No official ParSeD weights were released;
``tools/convert_official_checkpoint.py --variant parsed`` converts self-trained ones."""
from detectron2.config import LazyCall as L

from rlipv2.modeling.parsed_decoder import ParSeDDecoder

from .rlipv2_parseda_r50 import model

model.decoder = L(ParSeDDecoder)(
    num_queries=200,
    num_layers=3,
    d_model=256,
    d_ffn=1024,
    dropout=0.1,
    n_levels=4,
    n_heads=8,
    n_points=4,
    verb_query_tgt_type="vanilla_MBF",
    mbf_cardinality=16,
    learned_queries=True,
)
