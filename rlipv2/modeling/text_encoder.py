"""Label-text encoder: a Hugging Face transformer that turns each label text into one pooled token.

Official RLIPv2 tokenises the whole label sequence (objects, "no objects", relations) in one batch
with ``padding="longest"`` (no truncation), runs RoBERTa-base and keeps ``pooler_output`` (the
``<s>`` token after the dense+tanh pooler): one 768-d vector per label. This module does the same
with any ``AutoModel`` (name or local directory). Encoders without a pooler can pool the first token
(``pooling="cls"``) or average the valid tokens (``pooling="mean"``); a linear projection is added
when the encoder width differs from ``output_dim``.

At inference the embeddings of an unchanged label sequence are cached and reused across batches; the
cache is keyed on the texts and on a fingerprint of the weights (storage and in-place version
counter of every parameter), so any weight update or ``load_state_dict`` drops it.
"""
from __future__ import annotations

import torch
from torch import nn

from .text_config import fusion_lang_config, hf_offline

__all__ = ["HFTextEncoder", "hf_offline"]


def _autocast_state(device: torch.device):
    try:
        enabled = torch.is_autocast_enabled(device.type)
    except TypeError:  # older torch
        enabled = torch.is_autocast_enabled()
    return (enabled, torch.get_autocast_dtype(device.type) if enabled else None)


class HFTextEncoder(nn.Module):
    """Encodes label texts into pooled vectors (L, output_dim).

    Args:
        name_or_path: Hugging Face model name (default ``roberta-base``) or a local directory with
            config, tokenizer and (if ``pretrained``) weights.
        pretrained: load the weights; False builds the architecture from its config with random
            weights (tests, benchmarks, or when a converted checkpoint will be loaded anyway).
        pooling: ``"pooler"`` (pooler_output, official), ``"cls"`` (first token of the last hidden
            state) or ``"mean"`` (mean of the valid tokens).
        output_dim: width of the returned vectors (768 in RLIPv2); a Linear is added if different.
        attn_implementation: attention kernel of the encoder. ``"eager"`` reproduces the official
            explicit softmax; ``"sdpa"`` moves pooled vectors by about 2e-5.
        cache_inference: cache the embeddings of the last label sequence in eval mode.
        trainable: False freezes the transformer (``requires_grad=False``; the projection, if any,
            still trains): its pooled vectors are computed without autograd and cached in training
            too, which makes small CPU runs (the demo) much cheaper.
        model, tokenizer: already-built objects (override ``name_or_path``), e.g. in tests.
    """

    def __init__(self, name_or_path: str = "roberta-base", pretrained: bool = True, pooling: str = "pooler",
                 output_dim: int = 768, attn_implementation: str = "eager", cache_inference: bool = True,
                 model: nn.Module | None = None, tokenizer=None, trainable: bool = True):
        super().__init__()
        if pooling not in ("pooler", "cls", "mean"):
            raise ValueError(f"pooling must be 'pooler', 'cls' or 'mean', got {pooling!r}")
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        local_only = hf_offline()
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only)
        if model is None:
            if pretrained:
                model = AutoModel.from_pretrained(name_or_path, local_files_only=local_only,
                                                  attn_implementation=attn_implementation)
            else:
                config = AutoConfig.from_pretrained(name_or_path, local_files_only=local_only)
                model = AutoModel.from_config(config, attn_implementation=attn_implementation)
        elif attn_implementation is not None and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(attn_implementation)
        if pooling == "pooler" and getattr(model, "pooler", None) is None:
            raise ValueError(f"text encoder {name_or_path!r} has no pooler; use pooling='cls' or 'mean'")
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.width = int(model.config.hidden_size)
        self.output_dim = output_dim
        self.proj = nn.Linear(self.width, output_dim) if self.width != output_dim else None
        self.cache_inference = cache_inference
        self.trainable = bool(trainable)
        if not self.trainable:
            self.model.requires_grad_(False)
        self._cache_key = None
        self._cache_value: torch.Tensor | None = None
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def config(self):
        """The encoder's Hugging Face config (the fusion RoBERTa layers are built from it)."""
        return self.model.config

    def fusion_layer_config(self, hidden_size: int | None = None, attn_implementation: str = "eager"):
        """A copy of the encoder config for the ALIF language layers (width ``hidden_size``)."""
        return fusion_lang_config(self.model.config, hidden_size or self.output_dim, attn_implementation)

    def _weights_fingerprint(self):
        return tuple((p.data_ptr(), p._version) for p in self.parameters())

    def clear_cache(self) -> None:
        self._cache_key = None
        self._cache_value = None

    def train(self, mode: bool = True):
        if mode and self.trainable:
            self.clear_cache()
        super().train(mode)
        if not self.trainable:
            self.model.eval()  # frozen: no dropout, same vectors in training and inference
        return self

    def encode(self, texts: list[str], raw: bool = False) -> torch.Tensor:
        """Encode without the cache. Returns (len(texts), output_dim) (``raw``: before the projection,
        (len(texts), width))."""
        if len(texts) == 0:
            raise ValueError("the label sequence is empty")
        device = next(self.model.parameters()).device
        tok = self.tokenizer(list(texts), padding="longest", return_tensors="pt").to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trainable):
            out = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        if self.pooling == "pooler":
            pooled = out.pooler_output
        elif self.pooling == "cls":
            pooled = out.last_hidden_state[:, 0]
        else:
            m = tok["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1)
        return pooled if raw else self._project(pooled)

    def _project(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.proj(pooled) if self.proj is not None else pooled

    def _frozen_pooled(self, texts: tuple) -> torch.Tensor:
        weights = tuple((p.data_ptr(), p._version) for p in self.model.parameters())
        key = (texts, "frozen", weights, _autocast_state(next(self.parameters()).device))
        if self._cache_key == key and self._cache_value is not None:
            self.cache_hits += 1
            return self._cache_value
        self.cache_misses += 1
        with torch.no_grad():
            value = self.encode(list(texts), raw=True)
        self._cache_key, self._cache_value = key, value
        return value

    def forward(self, texts: list[str]) -> torch.Tensor:
        """texts: label strings. Returns (len(texts), output_dim); cached in eval mode."""
        texts = tuple(texts)
        use_cache = self.cache_inference and not self.training and not torch.is_grad_enabled()
        if not self.trainable:  # frozen transformer: cache its pooled vectors, project them every call
            return self._project(self._frozen_pooled(texts))
        if not use_cache:
            return self.encode(list(texts))
        key = (texts, self._weights_fingerprint(), _autocast_state(next(self.parameters()).device))
        if self._cache_key == key and self._cache_value is not None:
            self.cache_hits += 1
            return self._cache_value
        self.cache_misses += 1
        value = self.encode(list(texts))
        self._cache_key, self._cache_value = key, value
        return value

    def _load_from_state_dict(self, *args, **kwargs):
        self.clear_cache()
        return super()._load_from_state_dict(*args, **kwargs)
