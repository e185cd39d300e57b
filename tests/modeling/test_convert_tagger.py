"""Converter ``--variant tagger``: a synthetic official-layout R-Tagger checkpoint converts back exactly."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import torch

from rlipv2.modeling.checkpoint_conversion import convert_official_state_dict

from .test_convert_checkpoint import official_backbone_key
from .test_rtagger import _tag_inputs, build_tiny_tagger

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def to_official_tagger_layout(sd: dict, num_dec: int = 3, num_queries: int = 16) -> dict:
    """Rename RTagger keys to the official ``RLIP_ParSeD`` (+ ``RLIP_ParSeDTransformer_v2``, ``--verb_tagger``)
    layout, written from the official module names independently of the converter; add the box-head
    aliases of ``transformer.{ho,verb}_decoder``, the persistent ``position_ids`` and the unused
    ``query_embed`` [2Q, 3C] that the official tagger builds."""
    out = {}
    for k, v in sd.items():
        o = None
        if k.startswith("backbone."):
            o = official_backbone_key(k)
        elif k.startswith("neck.input_proj."):
            o = k[len("neck."):]
        elif k == "encoder.level_embed":
            o = "transformer.level_embed"
        elif k.startswith("encoder.layers."):
            o = k.replace("encoder.layers.", "transformer.ho_encoder.layers.")
        elif k.startswith("encoder.lang_layers."):
            o = k.replace("encoder.lang_layers.", "transformer.ho_encoder.roberta_layers.")
        elif k.startswith("encoder.fusion_layers."):
            o = re.sub(r"^encoder\.fusion_layers\.(\d+)\.", r"transformer.ho_encoder.VLFuse_layers.\1.b_attn.", k)
        elif k.startswith("encoder.resizer."):
            o = k.replace("encoder.resizer.", "transformer.resizer.")
        elif k.startswith("text_encoder.model."):
            o = k.replace("text_encoder.model.", "transformer.text_encoder.")
        elif k.startswith("decoder.entity_layers."):
            o = k.replace("decoder.entity_layers.", "transformer.ho_decoder.layers.")
        elif k.startswith("decoder.relation_layers."):
            o = k.replace("decoder.relation_layers.", "transformer.verb_decoder.layers.")
        elif k.startswith("decoder.reference_points_"):
            o = "transformer." + k[len("decoder."):]
        elif k.startswith(("decoder.sub_bbox_embed.", "decoder.obj_bbox_embed.")):
            o = k[len("decoder."):]
        elif k.startswith("queries."):
            o = "transformer." + k[len("queries."):]
        elif k.startswith("head."):
            o = k[len("head."):]
        assert o is not None, f"no official name for {k}"
        out[o] = v.clone()
    for k in list(out):
        m = re.match(r"^(sub|obj)_bbox_embed\.(\d+)\.(.*)$", k)
        if m:
            i = int(m.group(2))
            dec, j = ("ho", i) if i < num_dec else ("verb", i - num_dec)
            out[f"transformer.{dec}_decoder.{m.group(1)}_bbox_embed.{j}.{m.group(3)}"] = out[k]
    d = out["transformer.coord_proj.weight"].shape[0]
    out["query_embed.weight"] = torch.randn(num_queries, 3 * d)
    out["transformer.text_encoder.embeddings.position_ids"] = torch.arange(130)[None]
    return out


def test_tagger_round_trip_every_key_mapped_outputs_equal(tiny_text_dir, tmp_path):
    src = build_tiny_tagger(tiny_text_dir).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in src.named_parameters():
            if "bbox_embed" in n or "bias_" in n or "gamma" in n:
                p.normal_(0, 0.05)
    official = to_official_tagger_layout(src.state_dict())
    for key in ("transformer.coord_proj.weight", "transformer.verb_tgt.weight", "query_embed.weight",
                "transformer.reference_points_sub.weight", "transformer.ho_encoder.VLFuse_layers.0.b_attn.gamma_v",
                "transformer.ho_encoder.roberta_layers.2.attention.self.query.weight",
                "transformer.verb_decoder.obj_bbox_embed.2.layers.2.bias"):
        assert key in official, key
    assert official["transformer.coord_proj.weight"].shape[1] == 4
    # the GLIP gate is element-wise: gamma_v has one entry per channel and they now differ
    assert official["transformer.ho_encoder.VLFuse_layers.0.b_attn.gamma_v"].unique().numel() > 1

    _, unmapped, dropped = convert_official_state_dict(official, "tagger")
    assert unmapped == [] and "query_embed.weight" in dropped
    _, unmapped_parsed, _ = convert_official_state_dict(official, "parsed")
    assert "transformer.coord_proj.weight" in unmapped_parsed  # the ParSeD variant does not know them

    path = tmp_path / "official_tagger.pth"
    torch.save({"model": official, "args": argparse.Namespace(verb_tagger=True, num_queries=16)}, path)
    out_path = tmp_path / "tagger.pth"
    env = {**os.environ, "PYTHONPATH": REPO}
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_official_checkpoint.py"), str(path),
                        str(out_path), "--variant", "tagger"], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unmapped 0" in r.stdout

    converted = torch.load(out_path, weights_only=True)
    dst = build_tiny_tagger(tiny_text_dir)
    with torch.no_grad():
        for p in dst.parameters():
            p.normal_()
    result = dst.load_state_dict(converted["model"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    dst.eval()
    groups = _tag_inputs()
    with torch.no_grad():
        a, b = src(groups), dst(groups)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=0, rtol=0)
