"""Mapping of official RLIPv2 state dicts (``ckpt['model']`` of ``RLIP_ParSeDA``) to this model's names.

Official layout (design notes section 8.3) -> this implementation:

    backbone.0.body.<torchvision ResNet>       backbone.<Detectron2 ResNet> (conv1/bn1 -> stem.conv1[.norm],
                                               layer{i} -> res{i+1}, bn{k} -> conv{k}.norm,
                                               downsample.0/1 -> shortcut[.norm])
    backbone.0.body.<Swin>                     backbone.<Swin> (same names)
    input_proj.*                               neck.input_proj.*
    transformer.level_embed                    encoder.level_embed
    transformer.encoder.layers.*               encoder.layers.*
    transformer.encoder.roberta_layers.*       encoder.lang_layers.*
    transformer.encoder.VLFuse_layers.k.b_attn.*   encoder.fusion_layers.k.*
    transformer.resizer.*                      encoder.resizer.*
    transformer.text_encoder.*                 text_encoder.model.*   (embeddings.position_ids dropped)
    transformer.ho_decoder.*                   decoder.entity_decoder.*
    transformer.verb_decoder.*                 decoder.relation_decoder.*
    transformer.verb_tgt_generator.*           decoder.relation_query_fusion.*
    {tgt,verb_tgt,refpoint}_embed.weight       decoder.{...}.weight
    {sub,obj}_bbox_embed.{0..5}.*              decoder.{sub,obj}_bbox_embed.*
    transformer.{ho,verb}_decoder.{sub,obj}_bbox_embed.*   dropped: aliases of the top-level heads
    projection_text.*, bias_obj_a, bias_pred_a head.*

R-Tagger (``--variant tagger``; RLIP_ParSeD + RLIP_ParSeDTransformer_v2 with ``--verb_tagger``), besides the
ParSeD names above (``transformer.ho_encoder.*`` -> ``encoder.*``, ``transformer.{ho,verb}_decoder.layers.*``
-> ``decoder.{entity,relation}_layers.*``, ``transformer.reference_points_{sub,obj}`` -> ``decoder.*``):

    transformer.coord_proj.*                   queries.coord_proj.*
    transformer.verb_tgt.weight                queries.verb_tgt.weight
    query_embed.weight                         dropped: built by the official model, never read by the tagger
"""
from __future__ import annotations

import re
from collections import OrderedDict

import torch

__all__ = ["convert_official_state_dict", "truncate_queries", "QUERY_KEYS"]

QUERY_KEYS = ("decoder.tgt_embed.weight", "decoder.verb_tgt_embed.weight", "decoder.refpoint_embed.weight")

_PARSEDA_RULES = [
    (r"^input_proj\.", "neck.input_proj."),
    (r"^transformer\.level_embed$", "encoder.level_embed"),
    (r"^transformer\.encoder\.layers\.", "encoder.layers."),
    (r"^transformer\.encoder\.roberta_layers\.", "encoder.lang_layers."),
    (r"^transformer\.encoder\.VLFuse_layers\.(\d+)\.b_attn\.", r"encoder.fusion_layers.\1."),
    (r"^transformer\.resizer\.", "encoder.resizer."),
    (r"^transformer\.text_encoder\.", "text_encoder.model."),
    (r"^transformer\.ho_decoder\.", "decoder.entity_decoder."),
    (r"^transformer\.verb_decoder\.", "decoder.relation_decoder."),
    (r"^transformer\.verb_tgt_generator\.", "decoder.relation_query_fusion."),
    (r"^(tgt_embed|verb_tgt_embed|refpoint_embed)\.", r"decoder.\1."),
    (r"^(sub_bbox_embed|obj_bbox_embed)\.", r"decoder.\1."),
    (r"^(projection_text\.|bias_obj_a$|bias_pred_a$)", r"head.\1"),
]

# RLIPv2-ParSeD (``RLIP_ParSeD`` + ``RLIP_ParSeDTransformer_v2``), decoders -> ParSeDDecoder.
_PARSED_RULES = [
    (r"^input_proj\.", "neck.input_proj."),
    (r"^transformer\.level_embed$", "encoder.level_embed"),
    (r"^transformer\.ho_encoder\.layers\.", "encoder.layers."),
    (r"^transformer\.ho_encoder\.roberta_layers\.", "encoder.lang_layers."),
    (r"^transformer\.ho_encoder\.VLFuse_layers\.(\d+)\.b_attn\.", r"encoder.fusion_layers.\1."),
    (r"^transformer\.resizer\.", "encoder.resizer."),
    (r"^transformer\.text_encoder\.", "text_encoder.model."),
    (r"^transformer\.ho_decoder\.layers\.", "decoder.entity_layers."),
    (r"^transformer\.verb_decoder\.layers\.", "decoder.relation_layers."),
    (r"^transformer\.(reference_points_sub|reference_points_obj|verb_query_embed)\.", r"decoder.\1."),
    (r"^transformer\.verb_tgt_generator\.", "decoder.relation_query_fusion."),
    (r"^query_embed\.", "decoder.query_embed."),
    (r"^(sub_bbox_embed|obj_bbox_embed)\.", r"decoder.\1."),
    (r"^(projection_text\.|bias_obj_a$|bias_pred_a$)", r"head.\1"),
]
# R-Tagger (``RLIP_ParSeD`` with ``--verb_tagger``): the ParSeD parts plus the pair-query modules. Its
# ``query_embed`` [2Q, 3C] is built but never read (the queries come from the pairs): dropped.
_TAGGER_RULES = [r for r in _PARSED_RULES if r[0] != r"^query_embed\."] + [
    (r"^transformer\.(coord_proj|verb_tgt)\.", r"queries.\1."),
]
_TAGGER_UNUSED = re.compile(r"^query_embed\.weight$")

_ALIAS = re.compile(r"^transformer\.(ho|verb)_decoder\.(sub|obj)_bbox_embed\.(\d+)\.(.*)$")


def _resnet_key(k: str) -> str:
    """torchvision ResNet names -> Detectron2 ResNet names."""
    k = re.sub(r"^conv1\.", "stem.conv1.", k)
    k = re.sub(r"^bn1\.", "stem.conv1.norm.", k)
    m = re.match(r"^layer(\d)\.(\d+)\.(.*)$", k)
    if m:
        stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
        rest = re.sub(r"^bn(\d)\.", r"conv\1.norm.", rest)
        rest = re.sub(r"^downsample\.0\.", "shortcut.", rest)
        rest = re.sub(r"^downsample\.1\.", "shortcut.norm.", rest)
        k = f"res{stage}.{block}.{rest}"
    return k


def convert_official_state_dict(state_dict: dict, variant: str = "parseda"):
    """Rename an official state dict.

    Returns ``(converted OrderedDict, unmapped keys, dropped keys)``. Dropped: the aliased box-head
    keys (checked equal to the top-level heads), ``embeddings.position_ids`` and BN
    ``num_batches_tracked``. Raises ValueError if an alias differs from the head it should alias.
    """
    if variant not in ("parseda", "parsed", "tagger"):
        raise ValueError(f"variant must be 'parseda', 'parsed' or 'tagger', got {variant!r}")
    rules = {"parseda": _PARSEDA_RULES, "parsed": _PARSED_RULES, "tagger": _TAGGER_RULES}[variant]
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    unmapped, dropped = [], []
    num_dec = None
    for k in state_dict:
        m = re.match(r"^transformer\.ho_decoder\.layers\.(\d+)\.", k)
        if m:
            num_dec = max(num_dec or 0, int(m.group(1)) + 1)
    for k, v in state_dict.items():
        if k.endswith("embeddings.position_ids") or k.endswith("num_batches_tracked"):
            dropped.append(k)
            continue
        if variant == "tagger" and _TAGGER_UNUSED.match(k):
            dropped.append(k)
            continue
        alias = _ALIAS.match(k)
        if alias:
            dec, kind, idx, rest = alias.groups()
            offset = (num_dec or 3) if dec == "verb" else 0
            top = f"{kind}_bbox_embed.{int(idx) + offset}.{rest}"
            if top in state_dict and not torch.equal(state_dict[top], v):
                raise ValueError(f"{k} should alias {top} but the tensors differ")
            dropped.append(k)
            continue
        if k.startswith("backbone.0.body."):
            rest = k[len("backbone.0.body."):]
            out["backbone." + _resnet_key(rest)] = v
            continue
        for pat, rep in rules:
            if re.match(pat, k):
                out[re.sub(pat, rep, k)] = v
                break
        else:
            unmapped.append(k)
    return out, unmapped, dropped


def truncate_queries(state_dict: dict, num_queries: int, mode: str = "paired") -> dict:
    """Keep ``num_queries`` entity queries (e.g. a 200-query pre-trained model for 128-query fine-tuning).

    ``mode="official"`` keeps rows 0..num_queries-1 as the official ``filter_ckpt_tgt_anchor`` does, which
    breaks the subject/object pairing (new objects = old subjects 64-99 + old objects 0-27).
    ``mode="paired"`` keeps subjects 0..n/2-1 and objects Q..Q+n/2-1, preserving the pairs.
    """
    if mode not in ("official", "paired"):
        raise ValueError(f"mode must be 'official' or 'paired', got {mode!r}")
    if num_queries % 2:
        raise ValueError(f"num_queries must be even, got {num_queries}")
    out = OrderedDict(state_dict)
    for k in QUERY_KEYS:
        if k not in out:
            continue
        v = out[k]
        if num_queries > v.shape[0]:
            raise ValueError(f"{k} has {v.shape[0]} rows, cannot keep {num_queries}")
        if mode == "official":
            out[k] = v[:num_queries].clone()
        else:
            half, old_half = num_queries // 2, v.shape[0] // 2
            out[k] = torch.cat([v[:half], v[old_half:old_half + half]]).clone()
    return out
