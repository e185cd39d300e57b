"""Unit tests of the RLIPv2 building blocks: fusion, gates, position embeddings, neck, text encoder cache."""
from __future__ import annotations

import math

import pytest
import torch

from rlipv2.modeling.alif_fusion import GATING_MECHANISMS, GatedBiAttentionFusion
from rlipv2.modeling.neck import InputProjection
from rlipv2.modeling.position_encoding import PositionEmbeddingSine, gen_sineembed_for_position


def _fusion_inputs(n=2, nv=12, nl=5, v_dim=32, l_dim=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, nv, v_dim, generator=g)
    l = torch.randn(n, nl, l_dim, generator=g)
    pos = torch.randn(n, nv, v_dim, generator=g)
    v_mask = torch.zeros(n, nv, dtype=torch.bool)
    l_mask = torch.zeros(n, nl, dtype=torch.bool)
    if n > 1:
        v_mask[1, 8:] = True
        l_mask[0, 3:] = True
    return v, l, pos, v_mask, l_mask


def _fusion(**kw):
    torch.manual_seed(0)
    kw = {"v_dim": 32, "l_dim": 48, "embed_dim": 64, "num_heads": 4, **kw}
    return GatedBiAttentionFusion(**kw).eval()


@pytest.mark.parametrize("mask_padding", [False, True])
def test_fusion_sdpa_equals_explicit_softmax(mask_padding):
    v, l, pos, vm, lm = _fusion_inputs()
    f = _fusion(mask_padding=mask_padding)
    with torch.no_grad():
        a = f(v, l, pos, vm, lm)
        f.attn.use_sdpa = False
        b = f(v, l, pos, vm, lm)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_fusion_matches_hand_computation():
    """Single head, scalar gate: compare with the formula written out."""
    v, l, pos, _, _ = _fusion_inputs(n=1, nv=4, nl=3, v_dim=8, l_dim=6)
    f = _fusion(v_dim=8, l_dim=6, embed_dim=4, num_heads=1)
    with torch.no_grad():
        f.gamma_v.fill_(0.3)
        f.gamma_l.fill_(0.7)
        out_v, out_l = f(v, l, pos)
        a = f.attn
        v0, l0 = f.layer_norm_v(v)[0], f.layer_norm_l(l)[0]
        logits = (a.v_proj(v0 + pos[0]) @ a.l_proj(l0).T) / math.sqrt(4)
        dv = a.out_v_proj(logits.softmax(-1) @ a.values_l_proj(l0))
        dl = a.out_l_proj(logits.T.softmax(-1) @ a.values_v_proj(v0))
    torch.testing.assert_close(out_v[0], v0 + 0.3 * dv, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_l[0], l0 + 0.7 * dl, atol=1e-5, rtol=1e-5)


def test_fusion_padding_quirk_flag():
    """Official (mask_padding=False): padded pixels influence the labels; True: they do not."""
    v, l, pos, vm, lm = _fusion_inputs()
    v2 = v.clone()
    v2[1, 8:] = torch.randn(4, v.shape[-1])  # change only padded pixels of image 1
    for mask_padding, should_change in ((False, True), (True, False)):
        f = _fusion(mask_padding=mask_padding)
        with torch.no_grad():
            l_a = f(v, l, pos, vm, lm)[1][1]
            l_b = f(v2, l, pos, vm, lm)[1][1]
        assert (not torch.allclose(l_a, l_b, atol=1e-6)) == should_change


def test_vxac_gate_is_scalar_and_residual_is_layernormed():
    v, l, pos, _, _ = _fusion_inputs()
    f = _fusion(gating_mechanism="VXAc")
    assert torch.allclose(f.gamma_v, torch.full_like(f.gamma_v, 0.25))
    with torch.no_grad():
        base = f(v, l, pos)
        f.gamma_v[1:] += 3.0  # VXAc only reads gamma[0]
        same = f(v, l, pos)
        f.gamma_v.zero_()
        f.gamma_l.zero_()
        zero = f(v, l, pos)
    torch.testing.assert_close(base[0], same[0])
    torch.testing.assert_close(zero[0], f.layer_norm_v(v))
    torch.testing.assert_close(zero[1], f.layer_norm_l(l))


def test_glip_gate_is_elementwise():
    v, l, pos, _, _ = _fusion_inputs()
    f = _fusion(gating_mechanism="GLIP")
    with torch.no_grad():
        base = f(v, l, pos)[0]
        f.gamma_v[1:] += 3.0
        changed = f(v, l, pos)[0]
    torch.testing.assert_close(base[..., 0], changed[..., 0])
    assert not torch.allclose(base[..., 1:], changed[..., 1:])


@pytest.mark.parametrize("gate", GATING_MECHANISMS)
def test_every_gate_variant_runs(gate):
    v, l, pos, _, _ = _fusion_inputs()
    f = _fusion(gating_mechanism=gate)
    out_v, out_l = f(v, l, pos)
    assert out_v.shape == v.shape and out_l.shape == l.shape
    assert torch.isfinite(out_v).all() and torch.isfinite(out_l).all()


def test_unknown_gate_rejected():
    with pytest.raises(ValueError, match="gating_mechanism"):
        _fusion(gating_mechanism="tanh")


def test_sine_position_embedding_formula_and_swin_offset():
    mask = torch.zeros(1, 3, 4, dtype=torch.bool)
    mask[:, :, 3] = True  # last column padded
    pe_r = PositionEmbeddingSine(num_pos_feats=4, offset=0.0)(mask)
    pe_s = PositionEmbeddingSine(num_pos_feats=4, offset=-0.5)(mask)
    assert pe_r.shape == (1, 8, 3, 4)
    # channel 4 = sin(x_embed / 10000^0) with x_embed = cumsum / (last + eps) * 2pi
    x = torch.tensor([1.0, 2.0, 3.0, 3.0])
    torch.testing.assert_close(pe_r[0, 4, 0], torch.sin(x / (3 + 1e-6) * 2 * math.pi))
    torch.testing.assert_close(pe_s[0, 4, 0], torch.sin((x - 0.5) / (3 + 1e-6) * 2 * math.pi))
    # channel 0 = sin(y_embed): rows 1,2,3 of 3
    y = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(pe_r[0, 0, :, 0], torch.sin(y / (3 + 1e-6) * 2 * math.pi))


def test_box_sine_embedding_order_is_y_x_w_h():
    box = torch.tensor([[[0.1, 0.2, 0.3, 0.4]]])
    e = gen_sineembed_for_position(box, num_feats=8)
    assert e.shape == (1, 1, 32)
    for i, c in enumerate([0.2, 0.1, 0.3, 0.4]):
        torch.testing.assert_close(e[0, 0, 8 * i], torch.sin(torch.tensor(c * 2 * math.pi)))


def test_neck_extra_level_uses_raw_last_map():
    torch.manual_seed(0)
    neck = InputProjection([8, 16, 32], hidden_dim=32, num_feature_levels=4, num_groups=8)
    feats = [torch.randn(1, c, s, s) for c, s in ((8, 16), (16, 8), (32, 4))]
    out = neck(feats)
    assert [o.shape[-1] for o in out] == [16, 8, 4, 2]
    assert neck.input_proj[3][0].in_channels == 32 and neck.input_proj[3][0].stride == (2, 2)
    torch.testing.assert_close(out[3], neck.input_proj[3](feats[-1]))


class TestTextEncoder:
    @pytest.fixture
    def enc(self, tiny_text_dir):
        from rlipv2.modeling.text_encoder import HFTextEncoder

        return HFTextEncoder(tiny_text_dir, output_dim=64).eval()

    def test_pooled_output_equals_single_label_encoding(self, enc):
        texts = ["person", "drink with", "no objects"]
        with torch.no_grad():
            batch = enc.encode(texts)
            single = torch.cat([enc.encode([t]) for t in texts])
        assert batch.shape == (3, 64)
        torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-5)

    def test_cache_reused_and_invalidated(self, enc):
        texts = ["person", "cup", "hold"]
        with torch.no_grad():
            a = enc(texts)
            b = enc(texts)
            assert b is a and enc.cache_hits == 1 and enc.cache_misses == 1
            enc(["person", "cup"])  # another sequence: recomputed
            assert enc.cache_misses == 2
            enc(texts)
            assert enc.cache_misses == 3
            p = next(enc.model.parameters())
            p.add_(0.5)  # in-place weight change (optimizer step)
            c = enc(texts)
            assert enc.cache_misses == 4 and not torch.allclose(a, c)
            enc.load_state_dict(enc.state_dict())
            enc(texts)
            assert enc.cache_misses == 5
        enc(texts)  # grad enabled: never cached
        enc.train()
        with torch.no_grad():
            enc(texts)
        assert enc.cache_misses == 5 and enc.cache_hits == 1

    def test_projection_when_width_differs(self, tiny_text_dir):
        from rlipv2.modeling.text_encoder import HFTextEncoder

        enc = HFTextEncoder(tiny_text_dir, output_dim=48)
        assert enc.proj is not None and enc.encode(["dog"]).shape == (1, 48)
        assert enc.fusion_layer_config().hidden_size == 48

    def test_mean_and_cls_pooling(self, tiny_text_dir):
        from rlipv2.modeling.text_encoder import HFTextEncoder

        for pooling in ("cls", "mean"):
            enc = HFTextEncoder(tiny_text_dir, output_dim=64, pooling=pooling).eval()
            with torch.no_grad():
                out = enc.encode(["dog", "sit on"])
            assert out.shape == (2, 64) and torch.isfinite(out).all()


def _memory(n=2, d=32, shapes=((8, 8), (4, 4), (2, 2), (1, 1))):
    spatial = torch.tensor(shapes)
    start = torch.cat([spatial.new_zeros(1), spatial.prod(1).cumsum(0)[:-1]])
    s = int(spatial.prod(1).sum())
    g = torch.Generator().manual_seed(0)
    return (torch.randn(n, s, d, generator=g), spatial, start, torch.ones(n, len(shapes), 2),
            torch.zeros(n, s, dtype=torch.bool))


@pytest.mark.parametrize("kind", ["vanilla", "vanilla_MBF"])
def test_parsed_decoder_references(kind):
    from rlipv2.modeling.parsed_decoder import ParSeDDecoder

    torch.manual_seed(0)
    dec = ParSeDDecoder(num_queries=6, num_layers=2, d_model=32, d_ffn=64, dropout=0.0, n_heads=4,
                        verb_query_tgt_type=kind, mbf_cardinality=4, learned_queries=False).eval()
    with torch.no_grad():
        for h in list(dec.sub_bbox_embed) + list(dec.obj_bbox_embed):
            h.layers[-1].weight.normal_(0, 0.1)
    memory, spatial, start, vr, pm = _memory()
    tgt, pos = torch.randn(2, 6, 32), torch.randn(2, 6, 32)
    with torch.no_grad():
        out = dec(memory, spatial, start, vr, pm, tgt=tgt, query_pos=pos, verb_tgt=torch.randn(6, 32))
    assert out["hs_sub"].shape == (2, 2, 3, 32) and out["hs_rel"].shape == (2, 2, 3, 32)
    assert out["sub_boxes"].shape == (2, 2, 3, 4)
    # layer 0 refines 2-d points: the box centre is offset from the initial point
    delta = dec.sub_bbox_embed[0](out["hs_sub"][0])
    expected_xy = (delta[..., :2] + torch.logit(out["init_sub_ref"], eps=1e-5)).sigmoid()
    torch.testing.assert_close(out["sub_boxes"][0][..., :2], expected_xy, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["sub_boxes"][0][..., 2:], delta[..., 2:].sigmoid())
