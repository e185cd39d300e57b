"""A tiny R-Tagger for tests and demos: ResNet-18, width 64, 16 entity slots (8 pairs), 2-layer text encoder.
``model.text_encoder.name_or_path`` must point to a local directory, e.g. one written by
``rlipv2.utils.testing.save_tiny_text_encoder`` (hidden size 64). The sizes are those of the tiny
ParSeDA (``make_tiny`` in ``rlipv2_parseda_tiny.py``)."""
from .rlipv2_parseda_tiny import make_tiny
from .rtagger_r50 import model

make_tiny(model, num_queries=16)
