"""ALIF's gated bidirectional vision-language attention block (official ``RLIPv2_VLFuse``).

One block fuses the visual tokens of the coarsest level ``v`` (N, Nv, 256) with the label tokens ``l``
(N, Nl, 768):

    v0, l0 = LN_v(v), LN_l(l)                                   # the residual base is layer-normed
    A      = (W_v (v0 + pos)) (W_l l0)^T * head_dim^-0.5        # 8 heads of 2048/8 = 256 dims
    dv     = W_out_v( softmax_over_labels(A) @ V_l(l0) )        # vision <- language
    dl     = W_out_l( softmax_over_pixels(A^T) @ V_v(v0) )      # language <- vision
    v_out  = v0 + gate_v(dv),   l_out = l0 + gate_l(dl)

with attention-probability dropout 0.1. Both attentions run through
``torch.nn.functional.scaled_dot_product_attention``; ``use_sdpa=False`` runs the official explicit
softmax (needed for the numeric-safety clamps). Gates (``gating_mechanism``): ``"VXAc"`` (scalar
gamma[0], no activation; all RLIPv2 scripts), ``"GLIP"`` (element-wise gamma; the R-Tagger) and the
official ablations ``Vtanh, Etanh, Stanh, SDFtanh, SFtanh, SOtanh, SXAc, SDFXAc, SXAcLN, SDFXAcLN,
SDFOXAcLN, MBF, XGating``. gamma is initialised to ``init_gate`` (1 / num_feature_levels = 0.25).

Masking. The official block is meant to add -9e15 at padded pixels / labels, but it builds the mask
from a bool tensor, so ``masked_fill(mask == 0, -9e15)`` writes True and the "mask" adds +1 to every
logit: nothing is masked (softmax is shift invariant). ``mask_padding=False`` reproduces that
(faithful, needed for official checkpoints); ``mask_padding=True`` applies the intended -9e15.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import MultiBranchFusion

__all__ = ["BiMultiHeadAttention", "GatedBiAttentionFusion", "GATING_MECHANISMS"]

GATING_MECHANISMS = ("GLIP", "Vtanh", "Etanh", "Stanh", "SDFtanh", "SFtanh", "SOtanh", "VXAc", "SXAc",
                     "SDFXAc", "SXAcLN", "SDFXAcLN", "SDFOXAcLN", "MBF", "XGating")
_MASK_VALUE = -9e15


def _additive_mask(padding_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(N, S) bool, True on padding -> (N, 1, 1, S) additive mask with -9e15 (clamped to dtype)."""
    if padding_mask is None:
        return None
    value = max(_MASK_VALUE, torch.finfo(dtype).min)
    mask = torch.zeros(padding_mask.shape, dtype=dtype, device=padding_mask.device)
    return mask.masked_fill(padding_mask, value)[:, None, None, :]


class BiMultiHeadAttention(nn.Module):
    """Bidirectional multi-head attention sharing one logit matrix (official ``RLIPv2_BiMultiHeadAttention``).

    Parameters: ``v_proj``, ``l_proj``, ``values_v_proj``, ``values_l_proj``, ``out_v_proj``, ``out_l_proj``.
    """

    def __init__(self, v_dim: int = 256, l_dim: int = 768, embed_dim: int = 2048, num_heads: int = 8,
                 dropout: float = 0.1, use_sdpa: bool = True, stable_softmax_2d: bool = False,
                 clamp_min_for_underflow: bool = False, clamp_max_for_overflow: bool = False):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.dropout = dropout
        self.use_sdpa = use_sdpa
        self.stable_softmax_2d = stable_softmax_2d
        self.clamp_min_for_underflow = clamp_min_for_underflow
        self.clamp_max_for_overflow = clamp_max_for_overflow
        self.v_proj = nn.Linear(v_dim, embed_dim)
        self.l_proj = nn.Linear(l_dim, embed_dim)
        self.values_v_proj = nn.Linear(v_dim, embed_dim)
        self.values_l_proj = nn.Linear(l_dim, embed_dim)
        self.out_v_proj = nn.Linear(embed_dim, v_dim)
        self.out_l_proj = nn.Linear(embed_dim, l_dim)
        for m in (self.v_proj, self.l_proj, self.values_v_proj, self.values_l_proj, self.out_v_proj, self.out_l_proj):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, s, _ = x.shape
        return x.view(n, s, self.num_heads, self.head_dim).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        n, h, s, d = x.shape
        return x.transpose(1, 2).reshape(n, s, h * d)

    def forward(self, v: torch.Tensor, l: torch.Tensor, v_pos: torch.Tensor | None = None,
                v_padding_mask: torch.Tensor | None = None, l_padding_mask: torch.Tensor | None = None):
        """v: (N, Nv, v_dim), l: (N, Nl, l_dim), masks (N, Nv) / (N, Nl) True on padding (None: no mask).

        Returns (delta_v (N, Nv, v_dim), delta_l (N, Nl, l_dim)).
        """
        q_v = self._heads(self.v_proj(v if v_pos is None else v + v_pos))  # (N, h, Nv, d)
        k_l = self._heads(self.l_proj(l))                                    # (N, h, Nl, d)
        val_v = self._heads(self.values_v_proj(v))
        val_l = self._heads(self.values_l_proj(l))
        p = self.dropout if self.training else 0.0
        explicit = (not self.use_sdpa or self.stable_softmax_2d or self.clamp_min_for_underflow
                    or self.clamp_max_for_overflow)
        if explicit:
            out_v, out_l = self._explicit(q_v, k_l, val_v, val_l, v_padding_mask, l_padding_mask, p)
        else:
            mask_l = _additive_mask(l_padding_mask, q_v.dtype)
            mask_v = _additive_mask(v_padding_mask, q_v.dtype)
            out_v = F.scaled_dot_product_attention(q_v, k_l, val_l, attn_mask=mask_l, dropout_p=p, scale=self.scale)
            out_l = F.scaled_dot_product_attention(k_l, q_v, val_v, attn_mask=mask_v, dropout_p=p, scale=self.scale)
        return self.out_v_proj(self._merge(out_v)), self.out_l_proj(self._merge(out_l))

    def _explicit(self, q_v, k_l, val_v, val_l, v_padding_mask, l_padding_mask, p):
        """The official explicit-softmax computation, including its optional clamps."""
        attn = torch.matmul(q_v * self.scale, k_l.transpose(-1, -2))  # (N, h, Nv, Nl)
        if self.stable_softmax_2d:
            attn = attn - attn.max()
        if self.clamp_min_for_underflow:
            attn = attn.clamp(min=-50000)
        if self.clamp_max_for_overflow:
            attn = attn.clamp(max=50000)
        attn_t = attn.transpose(-1, -2)
        attn_l = attn_t - attn_t.max(dim=-1, keepdim=True)[0]
        if self.clamp_min_for_underflow:
            attn_l = attn_l.clamp(min=-50000)
        if self.clamp_max_for_overflow:
            attn_l = attn_l.clamp(max=50000)
        mask_v = _additive_mask(v_padding_mask, attn.dtype)
        if mask_v is not None:
            attn_l = attn_l + mask_v
        mask_l = _additive_mask(l_padding_mask, attn.dtype)
        if mask_l is not None:
            attn = attn + mask_l
        probs_v = F.dropout(attn.softmax(dim=-1), p=p, training=p > 0)
        probs_l = F.dropout(attn_l.softmax(dim=-1), p=p, training=p > 0)
        return torch.matmul(probs_v, val_l), torch.matmul(probs_l, val_v)


class GatedBiAttentionFusion(nn.Module):
    """One ALIF fusion step (official ``RLIPv2_VLFuse.b_attn``): pre-LN, bi-attention, gated residual.

    Args:
        v_dim, l_dim: visual (256) and language (768) widths.
        embed_dim, num_heads: attention width (2048) and heads (8).
        dropout: attention-probability dropout (0.1).
        init_gate: initial gamma (1 / num_feature_levels = 0.25).
        gating_mechanism: one of ``GATING_MECHANISMS`` (``"VXAc"`` default).
        mask_padding: apply the intended -9e15 masks (False reproduces the official no-op mask).
        use_sdpa, stable_softmax_2d, clamp_min_for_underflow, clamp_max_for_overflow: see
            :class:`BiMultiHeadAttention`.
    """

    def __init__(self, v_dim: int = 256, l_dim: int = 768, embed_dim: int = 2048, num_heads: int = 8,
                 dropout: float = 0.1, init_gate: float = 0.25, gating_mechanism: str = "VXAc",
                 mask_padding: bool = False, use_sdpa: bool = True, stable_softmax_2d: bool = False,
                 clamp_min_for_underflow: bool = False, clamp_max_for_overflow: bool = False):
        super().__init__()
        if gating_mechanism not in GATING_MECHANISMS:
            raise ValueError(f"gating_mechanism must be one of {GATING_MECHANISMS}, got {gating_mechanism!r}")
        self.gating_mechanism = gating_mechanism
        self.mask_padding = mask_padding
        self.layer_norm_v = nn.LayerNorm(v_dim)
        self.layer_norm_l = nn.LayerNorm(l_dim)
        self.attn = BiMultiHeadAttention(v_dim, l_dim, embed_dim, num_heads, dropout, use_sdpa=use_sdpa,
                                         stable_softmax_2d=stable_softmax_2d,
                                         clamp_min_for_underflow=clamp_min_for_underflow,
                                         clamp_max_for_overflow=clamp_max_for_overflow)
        self.gamma_v = nn.Parameter(init_gate * torch.ones(v_dim))
        self.gamma_l = nn.Parameter(init_gate * torch.ones(l_dim))
        g = gating_mechanism
        if g in ("Stanh", "SDFtanh", "SFtanh", "SDFXAc", "SXAc", "SXAcLN", "SDFXAcLN"):
            self.gamma_v_down = nn.Linear(v_dim, v_dim // 4)
            self.gamma_v_up = nn.Linear(v_dim // 4, v_dim)
            self.gamma_l_down = nn.Linear(l_dim, l_dim // 4)
            self.gamma_l_up = nn.Linear(l_dim // 4, l_dim)
        if g in ("SXAcLN", "SDFXAcLN"):
            self.layer_norm_gating_v = nn.LayerNorm(v_dim // 4)
            self.layer_norm_gating_l = nn.LayerNorm(l_dim // 4)
        if g in ("SOtanh", "SDFOXAcLN"):
            self.gamma_v_down = nn.Linear(v_dim, v_dim // 2)
            self.gamma_v_one = nn.Linear(v_dim // 2, 1)
            self.gamma_l_down = nn.Linear(l_dim, l_dim // 2)
            self.gamma_l_one = nn.Linear(l_dim // 2, 1)
        if g == "SDFOXAcLN":
            self.layer_norm_gating_v = nn.LayerNorm(v_dim // 2)
            self.layer_norm_gating_l = nn.LayerNorm(l_dim // 2)
        if g == "MBF":
            self.MBF_v = MultiBranchFusion(v_dim, v_dim, v_dim, 16)
            self.MBF_l = MultiBranchFusion(l_dim, l_dim, l_dim, 16)

    def _gate(self, side: str, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Residual update of one modality (``side`` is "v" or "l"); ``x`` is the layer-normed input."""
        g = self.gating_mechanism
        gamma = getattr(self, f"gamma_{side}")
        if g == "GLIP":
            return x + gamma * delta
        if g == "VXAc":
            return x + gamma[0] * delta
        if g == "XGating":
            return x + delta
        if g == "Vtanh":
            return x + torch.tanh(gamma[0]) * delta
        if g == "Etanh":
            return x + torch.tanh(gamma) * delta
        if g == "MBF":
            return getattr(self, f"MBF_{side}")(x, delta)
        down = getattr(self, f"gamma_{side}_down")
        if g in ("Stanh", "SDFtanh", "SFtanh", "SXAc", "SDFXAc"):
            src = {"Stanh": gamma, "SXAc": gamma, "SDFtanh": delta, "SDFXAc": delta, "SFtanh": x}[g]
            w = getattr(self, f"gamma_{side}_up")(torch.relu(down(src)))
            return x + (torch.tanh(w) if g.endswith("tanh") else w) * delta
        if g in ("SXAcLN", "SDFXAcLN"):
            src = gamma if g == "SXAcLN" else delta
            norm = getattr(self, f"layer_norm_gating_{side}")
            return x + getattr(self, f"gamma_{side}_up")(torch.relu(norm(down(src)))) * delta
        if g == "SOtanh":
            return x + torch.tanh(getattr(self, f"gamma_{side}_one")(torch.relu(down(gamma)))) * delta
        # SDFOXAcLN
        norm = getattr(self, f"layer_norm_gating_{side}")
        return x + getattr(self, f"gamma_{side}_one")(torch.relu(norm(down(delta)))) * delta

    def forward(self, v: torch.Tensor, l: torch.Tensor, v_pos: torch.Tensor | None = None,
                v_padding_mask: torch.Tensor | None = None, l_padding_mask: torch.Tensor | None = None):
        """v (N, Nv, v_dim), l (N, Nl, l_dim), v_pos like v; masks True on padding.

        Returns the fused (v, l).
        """
        v = self.layer_norm_v(v)
        l = self.layer_norm_l(l)
        if not self.mask_padding:
            v_padding_mask = l_padding_mask = None
        delta_v, delta_l = self.attn(v, l, v_pos, v_padding_mask, l_padding_mask)
        return self._gate("v", v, delta_v), self._gate("l", l, delta_l)
