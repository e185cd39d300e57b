"""A tiny RLIPv2-ParSeDA for tests and demos: ResNet-18 (BasicBlock), width 64, 8 queries, 2-layer text
encoder. ``model.text_encoder.name_or_path`` must point to a local directory, e.g. one written by
``rlipv2.utils.testing.save_tiny_text_encoder`` (hidden size 64).

:func:`make_tiny` holds the tiny sizes; the tiny R-Tagger (``rtagger_tiny.py``) uses it too.
"""
from .rlipv2_parseda_r50 import model


def make_tiny(model, num_queries: int) -> None:
    """Shrink an RLIPv2 / R-Tagger model config (built on ``rlipv2_parseda_r50.py``) to the tiny sizes."""
    model.backbone.depth = 18
    model.neck.in_channels = [128, 256, 512]
    model.text_encoder.name_or_path = "tiny-roberta"  # set to a local directory
    model.text_encoder.pretrained = True
    model.text_encoder.output_dim = 64
    model.encoder.fusion_embed_dim = 128
    model.decoder.num_queries = num_queries
    model.decoder.d_model = 64
    model.decoder.d_ffn = 128
    model.position_embedding.num_pos_feats = 32


make_tiny(model, num_queries=8)
