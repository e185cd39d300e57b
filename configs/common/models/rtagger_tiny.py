"""A tiny R-Tagger for tests and demos: ResNet-18, width 64, 16 entity slots (8 pairs), 2-layer text encoder.
``model.text_encoder.name_or_path`` must point to a local directory, e.g. one written by
``rlipv2.utils.testing.save_tiny_text_encoder`` (hidden size 64)."""
from .rtagger_r50 import model

model.backbone.depth = 18
model.neck.in_channels = [128, 256, 512]
model.text_encoder.name_or_path = "tiny-roberta"  # set to a local directory
model.text_encoder.pretrained = True
model.text_encoder.output_dim = 64
model.encoder.fusion_embed_dim = 128
model.decoder.num_queries = 16
model.decoder.d_model = 64
model.decoder.d_ffn = 128
model.position_embedding.num_pos_feats = 32
