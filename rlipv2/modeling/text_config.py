"""Text-encoder configuration helpers shared by the text encoder and the ALIF encoder.

``text_encoder`` (the label encoder) and ``alif_encoder`` (the fusion RoBERTa layers) both need them;
they live here so that neither of those modules imports the other.
"""
from __future__ import annotations

import copy
import os

__all__ = ["hf_offline", "fusion_lang_config"]


def hf_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for local files only."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def fusion_lang_config(config, lang_dim: int = 768, attn_implementation: str = "eager"):
    """Config of the fusion RoBERTa layers: the text encoder's config (an object, or a Hugging Face
    name / local directory as in the official ``RobertaConfig.from_pretrained(text_encoder_type)``),
    resized to ``lang_dim`` when the encoder is wider or narrower (4x FFN, heads dividing the width)."""
    if isinstance(config, str):
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(config, local_files_only=hf_offline())
    cfg = copy.deepcopy(config)
    if int(cfg.hidden_size) != lang_dim:
        cfg.hidden_size = lang_dim
        cfg.intermediate_size = 4 * lang_dim
        if lang_dim % cfg.num_attention_heads != 0:
            cfg.num_attention_heads = max(h for h in range(1, 17) if lang_dim % h == 0)
    cfg._attn_implementation = attn_implementation
    return cfg
