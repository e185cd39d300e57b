"""CPU inference fast paths are exact: chunked encoder FFN, in-place sampling locations."""
from __future__ import annotations

import torch

from rlipv2.layers import MSDeformAttn
from rlipv2.modeling.alif_encoder import DeformableEncoderLayer


def test_chunked_ffn_equals_plain_ffn():
    torch.manual_seed(0)
    layer = DeformableEncoderLayer(d_model=32, d_ffn=64, n_levels=2, n_heads=4, n_points=2).eval()
    layer.ffn_chunk_tokens = 7  # several chunks and a ragged last one
    x = torch.randn(2, 40, 32)
    with torch.no_grad():
        chunked = layer.forward_ffn(x)
    plain = layer.linear2(torch.relu(layer.linear1(x)))
    torch.testing.assert_close(chunked, plain, atol=1e-6, rtol=1e-6)
    # with autograd the plain path runs (and gradients flow)
    y = layer.forward_ffn(x.requires_grad_())
    y.sum().backward()
    assert x.grad is not None and layer.linear1.weight.grad is not None


def _deform_inputs(n=2, lq=5, c=16, heads=2, levels=2, points=2):
    shapes = torch.tensor([[6, 8], [3, 4]])
    start = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    s = int((shapes[:, 0] * shapes[:, 1]).sum())
    g = torch.Generator().manual_seed(1)
    return (torch.randn(n, lq, c, generator=g), torch.rand(n, lq, levels, 2, generator=g),
            torch.randn(n, s, c, generator=g), shapes, start)


def test_in_place_sampling_locations_match_and_backpropagate():
    torch.manual_seed(0)
    attn = MSDeformAttn(16, 2, 2, 2)
    attn.backend = "pytorch"
    query, ref, src, shapes, start = _deform_inputs()
    ref.requires_grad_()
    out = attn(query, ref, src, shapes, start)
    # reference: the out-of-place formula
    n, lq, _ = query.shape
    off = attn.sampling_offsets(query).view(n, lq, 2, 2, 2, 2)
    w = torch.softmax(attn.attention_weights(query).view(n, lq, 2, 4), -1).view(n, lq, 2, 2, 2)
    norm = torch.stack([shapes[:, 1], shapes[:, 0]], -1)
    loc = ref[:, :, None, :, None, :] + off / norm[None, None, None, :, None, :]
    from rlipv2.layers import ms_deform_attn

    value = attn.value_proj(src).view(n, src.shape[1], 2, 8)
    expected = attn.output_proj(ms_deform_attn(value, shapes, start, loc, w, 64, backend="pytorch"))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    out.sum().backward()
    assert ref.grad is not None and torch.isfinite(ref.grad).all()
    assert attn.sampling_offsets.weight.grad.abs().sum() > 0
