"""Every model config instantiates (tiny text encoder; Swin-L with fewer blocks) with the official settings."""
from __future__ import annotations

import pytest
import torch

from .conftest import OBJECTS, label_texts, load_model_config


@pytest.mark.parametrize("name", ["rlipv2_parseda_r50.py", "rlipv2_parseda_swin_t.py", "rlipv2_parseda_swin_l.py",
                                  "rlipv2_parseda_tiny.py", "rlipv2_parsed_r50.py"])
def test_every_model_config_instantiates(tiny_text_dir, name):
    from detectron2.config import instantiate

    cfg = load_model_config(name, tiny_text_dir)
    if "swin_l" in name:
        cfg.model.backbone.depths = [2, 2, 2, 2]  # keep the CPU test light; widths stay Swin-L's
    model = instantiate(cfg.model)
    n_q = 8 if "tiny" in name else 200
    assert model.decoder.num_queries == n_q
    assert model.text_encoder.output_dim == (64 if "tiny" in name else 768)
    if "swin" in name:
        assert model.position_embedding.offset == -0.5
        frozen = [n for n, p in model.backbone.named_parameters() if "norm" in n]
        assert frozen and not any(p.requires_grad for n, p in model.backbone.named_parameters() if "norm" in n)
        assert not any(p.requires_grad for n, p in model.backbone.named_parameters()
                       if "relative_position_bias_table" in n)
    else:
        assert model.position_embedding.offset == 0.0
    if name != "rlipv2_parseda_tiny.py":
        enc = model.encoder
        assert enc.fusion_layers[0].attn.embed_dim == 2048 and enc.fusion_layers[0].attn.num_heads == 8
        assert enc.lang_layers[0].attention.self.query.weight.shape == (768, 768)
        assert float(enc.fusion_layers[0].gamma_v[0]) == 0.25
    if name == "rlipv2_parseda_swin_t.py":
        images = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            out = model.eval().forward_raw(images, torch.zeros(1, 64, 64, dtype=torch.bool), *label_texts())
        assert out["pred_obj_logits"].shape == (1, 100, len(OBJECTS) + 1)


def test_from_config_builds_from_a_lazy_config(tiny_text_dir):
    from rlipv2.modeling import RLIPv2

    cfg = load_model_config("rlipv2_parseda_tiny.py", tiny_text_dir)
    model = RLIPv2(cfg)
    assert model.decoder.num_queries == 8 and model.criterion is not None
