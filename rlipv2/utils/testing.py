"""Builders for tests, demos and benchmarks: a locally trained tokenizer and a tiny random RoBERTa.

Nothing here downloads anything: the byte-level BPE tokenizer is trained with the ``tokenizers``
library on a few words (the label names plus any extra text), and the RoBERTa model is built from a
small ``RobertaConfig`` with random weights. :func:`save_tiny_text_encoder` writes both to a directory
that ``HFTextEncoder(name_or_path=dir)`` (and ``AutoModel`` / ``AutoTokenizer``) can load offline.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["build_local_tokenizer", "build_tiny_roberta", "save_tiny_text_encoder", "hico_label_texts",
           "write_tiny_model_files", "TINY_LABELS"]

TINY_LABELS = (["person", "bicycle", "cup", "dog", "no objects"]
               + ["hold", "ride", "sit on", "walk", "drink with"])


def hico_label_texts() -> tuple[list[str], list[str]]:
    """HICO-DET object names (80) and verb phrases (117) from the packaged metadata, as label texts."""
    import json
    from pathlib import Path

    base = Path(__file__).resolve().parents[1] / "data" / "metadata"
    names = json.loads((base / "hico_object_names.txt").read_text())
    objs = [k for k, _ in sorted(names.items(), key=lambda kv: kv[1])]
    verbs = [ln.split()[1] for ln in (base / "hico_verb_names.txt").read_text().splitlines() if ln.strip()]
    return [o.replace("_", " ") for o in objs], [v.replace("_", " ") for v in verbs]


def build_local_tokenizer(texts: Iterable[str] = TINY_LABELS, vocab_size: int = 400):
    """A RoBERTa-style fast tokenizer (byte-level BPE, <s> ... </s>) trained on ``texts``."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    corpus = list(texts) + ["a photo of a person and an object"]
    bpe.train_from_iterator(corpus * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=specials)
    bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    return RobertaTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def build_tiny_roberta(tokenizer, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
                       intermediate_size: int = 128, attn_implementation: str = "eager"):
    """A random ``RobertaModel`` (with pooler) sized for tests."""
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
                           num_attention_heads=num_heads, intermediate_size=intermediate_size,
                           max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           type_vocab_size=1)
    return RobertaModel(config, add_pooling_layer=True, attn_implementation=attn_implementation) \
        if _accepts_attn_impl() else RobertaModel(config)


def _accepts_attn_impl() -> bool:
    import inspect

    from transformers import RobertaModel

    return "attn_implementation" in inspect.signature(RobertaModel.__init__).parameters


def save_tiny_text_encoder(directory: str | os.PathLike, texts: Iterable[str] = TINY_LABELS, **kwargs) -> str:
    """Write a tiny random RoBERTa + local tokenizer to ``directory``; returns the path."""
    import torch

    directory = os.fspath(directory)
    tok = build_local_tokenizer(texts)
    torch.manual_seed(0)
    model = build_tiny_roberta(tok, **kwargs)
    tok.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory


_TINY_MODEL_CONFIG = """\
# The tiny RLIPv2-ParSeDA with a tiny random RoBERTa (written by rlipv2.utils.testing.write_tiny_model_files).
from detectron2.config import LazyConfig

model = LazyConfig.load({base!r}).model
model.text_encoder.name_or_path = {text_dir!r}
"""


def write_tiny_model_files(directory: str | os.PathLike, texts: Iterable[str] = TINY_LABELS) -> tuple[str, str]:
    """A LazyConfig of the tiny RLIPv2-ParSeDA (``configs/common/models/rlipv2_parseda_tiny.py``, random tiny
    RoBERTa trained-tokenizer text encoder) and a checkpoint of its random weights, for servers and CLIs
    started in tests and benchmarks.

    Returns:
        (config path, weights path), both under ``directory``.
    """
    from pathlib import Path

    import torch
    from detectron2.config import LazyConfig, instantiate

    from ..engine.checkpoint import RLIPv2Checkpointer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = Path(__file__).resolve().parents[2] / "configs" / "common" / "models" / "rlipv2_parseda_tiny.py"
    text_dir = save_tiny_text_encoder(directory / "text_encoder", texts)
    config = directory / "tiny_model.py"
    config.write_text(_TINY_MODEL_CONFIG.format(base=str(base), text_dir=str(text_dir)))
    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(str(config)).model)
    RLIPv2Checkpointer(model, str(directory)).save("tiny_model")
    return str(config), str(directory / "tiny_model.pth")
