"""Converter round trip: a synthetic official-layout checkpoint converts back to this model exactly."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import torch

from rlipv2.modeling.checkpoint_conversion import convert_official_state_dict, truncate_queries

from .conftest import build_tiny_model, label_texts, random_batch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def official_backbone_key(k: str) -> str:
    """Official name of a backbone key of this model (``backbone.res3.0.conv1.weight`` ->
    ``backbone.0.body.layer2.0.conv1.weight``), written independently of the converter."""
    b = k[len("backbone."):]
    b = re.sub(r"^stem\.conv1\.norm\.", "bn1.", b)
    b = re.sub(r"^stem\.conv1\.", "conv1.", b)
    m = re.match(r"^res(\d)\.(\d+)\.(.*)$", b)
    if m:
        rest = m.group(3)
        rest = re.sub(r"^conv(\d)\.norm\.", r"bn\1.", rest)
        rest = re.sub(r"^shortcut\.norm\.", "downsample.1.", rest)
        rest = re.sub(r"^shortcut\.", "downsample.0.", rest)
        b = f"layer{int(m.group(1)) - 1}.{m.group(2)}.{rest}"
    return "backbone.0.body." + b


def to_official_layout(sd: dict, num_dec: int = 3) -> dict:
    """Rename this model's keys to the official RLIP_ParSeDA layout (design notes section 8.3), written
    independently of the converter, and add the official aliases and the persistent position_ids."""
    out = {}
    for k, v in sd.items():
        o = k
        if k.startswith("backbone."):
            o = official_backbone_key(k)
        elif k.startswith("neck.input_proj."):
            o = k[len("neck."):]
        elif k == "encoder.level_embed":
            o = "transformer.level_embed"
        elif k.startswith("encoder.layers."):
            o = "transformer." + k
        elif k.startswith("encoder.lang_layers."):
            o = k.replace("encoder.lang_layers.", "transformer.encoder.roberta_layers.")
        elif k.startswith("encoder.fusion_layers."):
            o = re.sub(r"^encoder\.fusion_layers\.(\d+)\.", r"transformer.encoder.VLFuse_layers.\1.b_attn.", k)
        elif k.startswith("encoder.resizer."):
            o = k.replace("encoder.", "transformer.")
        elif k.startswith("text_encoder.model."):
            o = k.replace("text_encoder.model.", "transformer.text_encoder.")
        elif k.startswith("decoder.entity_decoder."):
            o = k.replace("decoder.entity_decoder.", "transformer.ho_decoder.")
        elif k.startswith("decoder.relation_decoder."):
            o = k.replace("decoder.relation_decoder.", "transformer.verb_decoder.")
        elif k.startswith("decoder.relation_query_fusion."):
            o = k.replace("decoder.relation_query_fusion.", "transformer.verb_tgt_generator.")
        elif k.startswith("decoder."):
            o = k[len("decoder."):]
        elif k.startswith("head."):
            o = k[len("head."):]
        out[o] = v.clone()
    for k in list(out):
        m = re.match(r"^(sub|obj)_bbox_embed\.(\d+)\.(.*)$", k)
        if m:
            i = int(m.group(2))
            dec, j = ("ho", i) if i < num_dec else ("verb", i - num_dec)
            out[f"transformer.{dec}_decoder.{m.group(1)}_bbox_embed.{j}.{m.group(3)}"] = out[k]
    out["transformer.text_encoder.embeddings.position_ids"] = torch.arange(130)[None]
    return out


def _randomize(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "bbox_embed" in n or "bias_" in n:
                p.normal_(0, 0.05)


def test_round_trip_every_key_mapped_outputs_equal(tiny_text_dir, tmp_path):
    src = build_tiny_model(tiny_text_dir)
    _randomize(src)
    official = to_official_layout(src.state_dict())
    assert "transformer.verb_decoder.sub_bbox_embed.0.layers.0.weight" in official

    path = tmp_path / "official.pth"
    torch.save({"model": official, "args": argparse.Namespace(num_queries=8, backbone="resnet18"), "epoch": 3},
               path)
    out_path = tmp_path / "converted.pth"
    env = {**os.environ, "PYTHONPATH": REPO}
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_official_checkpoint.py"), str(path),
                        str(out_path)], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unmapped 0" in r.stdout

    converted = torch.load(out_path, weights_only=True)
    assert converted["official_args"]["num_queries"] == 8
    dst = build_tiny_model(tiny_text_dir)
    torch.manual_seed(123)
    with torch.no_grad():
        for p in dst.parameters():
            p.normal_()
    result = dst.load_state_dict(converted["model"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    images, mask = random_batch()
    texts, num_obj = label_texts()
    src.eval()
    dst.eval()
    with torch.no_grad():
        a = src.forward_raw(images, mask, texts, num_obj)
        b = dst.forward_raw(images, mask, texts, num_obj)
    for x, y in zip([a, *a["aux_outputs"]], [b, *b["aux_outputs"]]):
        for k in ("pred_sub_logits", "pred_obj_logits", "pred_verb_logits", "pred_sub_boxes", "pred_obj_boxes"):
            torch.testing.assert_close(x[k], y[k], atol=0, rtol=0)


def test_unmapped_keys_listed_and_aliases_checked():
    sd = {"transformer.mystery.weight": torch.zeros(2), "sub_bbox_embed.0.layers.0.bias": torch.ones(2),
          "transformer.ho_decoder.layers.0.norm1.bias": torch.zeros(2),
          "transformer.ho_decoder.sub_bbox_embed.0.layers.0.bias": torch.ones(2),
          "backbone.0.body.layer1.0.bn1.num_batches_tracked": torch.tensor(3)}
    new, unmapped, dropped = convert_official_state_dict(sd)
    assert unmapped == ["transformer.mystery.weight"]
    assert "decoder.sub_bbox_embed.0.layers.0.bias" in new
    assert "decoder.entity_decoder.layers.0.norm1.bias" in new
    assert len(dropped) == 2
    sd["transformer.ho_decoder.sub_bbox_embed.0.layers.0.bias"] = torch.zeros(2)
    try:
        convert_official_state_dict(sd)
        raise AssertionError("a diverging alias must be rejected")
    except ValueError as e:
        assert "alias" in str(e)


def test_resnet_key_renames():
    sd = {"backbone.0.body.conv1.weight": 1, "backbone.0.body.bn1.running_var": 2,
          "backbone.0.body.layer4.2.bn3.weight": 3, "backbone.0.body.layer2.0.downsample.0.weight": 4,
          "backbone.0.body.layer2.0.downsample.1.running_mean": 5}
    new, unmapped, _ = convert_official_state_dict({k: torch.tensor(v) for k, v in sd.items()})
    assert sorted(new) == sorted(["backbone.stem.conv1.weight", "backbone.stem.conv1.norm.running_var",
                                  "backbone.res5.2.conv3.norm.weight", "backbone.res3.0.shortcut.weight",
                                  "backbone.res3.0.shortcut.norm.running_mean"])
    assert not unmapped


def test_query_truncation_modes():
    sd = {"decoder.tgt_embed.weight": torch.arange(8.0)[:, None], "decoder.refpoint_embed.weight":
          torch.arange(8.0)[:, None].repeat(1, 4)}
    official = truncate_queries(sd, 4, "official")
    paired = truncate_queries(sd, 4, "paired")
    assert official["decoder.tgt_embed.weight"].flatten().tolist() == [0, 1, 2, 3]
    assert paired["decoder.tgt_embed.weight"].flatten().tolist() == [0, 1, 4, 5]
    assert paired["decoder.refpoint_embed.weight"][:, 0].tolist() == [0, 1, 4, 5]


class Evil:
    """Stands for an arbitrary pickled object."""


def test_converter_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "args": Evil()}, path)
    env = {**os.environ, "PYTHONPATH": REPO}
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_official_checkpoint.py"), str(path),
                        str(tmp_path / "out.pth")], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode != 0
    assert "Refusing to load checkpoint" in r.stderr and "evil.pth" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.pth").exists()


def test_swin_keys_keep_their_names():
    keys = ["backbone.0.body.patch_embed.proj.weight", "backbone.0.body.layers.2.blocks.5.attn.qkv.weight",
            "backbone.0.body.layers.1.downsample.reduction.weight", "backbone.0.body.norm3.bias",
            "backbone.0.body.layers.0.blocks.1.attn.relative_position_index"]
    new, unmapped, _ = convert_official_state_dict({k: torch.zeros(1) for k in keys})
    assert sorted(new) == sorted(k.replace("backbone.0.body.", "backbone.") for k in keys)
    assert not unmapped


def test_converter_refuses_a_checkpoint_that_is_not_official(tiny_text_dir, tmp_path):
    """A checkpoint of this implementation (already converted): nothing written, exit 2, one line."""
    path = tmp_path / "model_final.pth"
    torch.save({"model": build_tiny_model(tiny_text_dir).state_dict(), "iteration": 9}, path)
    out = tmp_path / "out" / "converted.pth"
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_official_checkpoint.py"), str(path),
                        str(out)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO}, cwd=REPO)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert last.startswith("convert_official_checkpoint: error: ") and "model_final.pth" in last
    assert "not an official RLIPv2 checkpoint" in last and "use it as train.init_checkpoint directly" in last
    assert not out.exists() and not (tmp_path / "out").exists() and r.stdout == ""


def test_converter_names_the_variant_that_fits():
    import importlib.util

    import pytest

    tool = os.path.join(REPO, "tools", "convert_official_checkpoint.py")
    spec = importlib.util.spec_from_file_location("convert", tool)
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    tagger = {"transformer.ho_encoder.layers.0.linear1.weight": torch.zeros(1),
              "transformer.coord_proj.weight": torch.zeros(1), "input_proj.0.0.weight": torch.zeros(1)}
    new, unmapped, _ = convert_official_state_dict(tagger, "parsed")
    with pytest.raises(ValueError, match=r"1 of its 3 keys have no official name .*coord_proj.*--variant tagger"):
        convert.check_official(tagger, new, unmapped, "parsed", "x.pth")
    with pytest.raises(ValueError, match="holds no weights"):
        convert.check_official({}, {}, [], "parseda", "x.pth")
