"""ParSeDA decoders: a DAB-deformable subject/object decoder, then a relation decoder.

Official ``RLIP_ParSeDABDeformableTransformer_v2`` + ``DABDeformableTransformerDecoderHOI`` +
the box heads of ``RLIP_ParSeDA``, with the box outputs computed in the decoder (no aliased heads).

Entity decoder (``ho_decoder``): ``num_queries`` content queries ``tgt_embed`` and anchors
``refpoint_embed`` (pre-sigmoid cxcywh); queries [0, Q) are subjects and [Q, 2Q) objects, pair q =
(subject q, object q). Each layer: DAB positional query ``query_scale(h) * ref_point_head(sine(ref))``
(scale 1 at layer 0), self-attention over all queries, deformable cross-attention around the box
reference (times the valid ratios), FFN; then iterative refinement
``box = sigmoid(bbox_embed_l(h) + inverse_sigmoid(ref))`` and ``ref = box.detach()``.

Relation decoder (``verb_decoder``): Q queries with content ``MBF(h_sub, h_obj)`` of the last entity
layer + the two halves of ``verb_tgt_embed`` (``verb_query_tgt_type="vanilla_MBF"``); its reference box
is the mean of its subject and object references, which start at the last entity boxes and are refined
by box heads ``L..2L-1`` applied to the relation states (detached, so those heads get no gradient).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlipv2.layers import MSDeformAttn

from .mlp import MLP, MultiBranchFusion, inverse_sigmoid
from .position_encoding import gen_sineembed_for_position

__all__ = ["DeformableDecoderLayer", "DABDecoder", "ParSeDADecoder"]


class DeformableDecoderLayer(nn.Module):
    """Deformable-DETR decoder layer: self-attn -> norm2 -> MSDeformAttn -> norm1 -> FFN -> norm3.

    Parameter names match the official checkpoints (``self_attn`` is ``nn.MultiheadAttention``).
    """

    def __init__(self, d_model: int = 256, d_ffn: int = 2048, dropout: float = 0.0, n_levels: int = 4,
                 n_heads: int = 8, n_points: int = 4, self_attn: bool = True):
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.do_self_attn = self_attn
        if self_attn:
            self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
            self.dropout2 = nn.Dropout(dropout)
            self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt, query_pos, reference_points, src, spatial_shapes, level_start_index,
                src_padding_mask=None, key_padding_mask=None, attn_mask=None):
        """tgt, query_pos: (N, Q, C); reference_points (N, Q, L, 2|4); src (N, S, C). Returns (N, Q, C)."""
        if self.do_self_attn:
            q = k = tgt if query_pos is None else tgt + query_pos
            tgt2 = self.self_attn(q, k, tgt, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                                  need_weights=False)[0]
            tgt = self.norm2(tgt + self.dropout2(tgt2))
        tgt2 = self.cross_attn(tgt if query_pos is None else tgt + query_pos, reference_points, src,
                               spatial_shapes, level_start_index, src_padding_mask)
        tgt = self.norm1(tgt + self.dropout1(tgt2))
        tgt2 = self.linear2(self.dropout3(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout4(tgt2))


class DABDecoder(nn.Module):
    """A stack of decoder layers with DAB heads ``query_scale`` (MLP d->d->d) and ``ref_point_head``
    (MLP 2d->d->d). The refinement loop lives in :class:`ParSeDADecoder`."""

    def __init__(self, num_layers: int = 3, d_model: int = 256, d_ffn: int = 2048, dropout: float = 0.0,
                 n_levels: int = 4, n_heads: int = 8, n_points: int = 4):
        super().__init__()
        self.num_layers = num_layers
        self.d_model = d_model
        self.layers = nn.ModuleList(DeformableDecoderLayer(d_model, d_ffn, dropout, n_levels, n_heads, n_points)
                                    for _ in range(num_layers))
        self.query_scale = MLP(d_model, d_model, d_model, 2)
        self.ref_point_head = MLP(2 * d_model, d_model, d_model, 2)

    def run_layer(self, lid, output, ref_boxes, memory, spatial_shapes, level_start_index, valid_ratios,
                  padding_mask, attn_mask=None, key_padding_mask=None):
        """One DAB layer around normalised cxcywh boxes ``ref_boxes`` (N, Q, 4). Returns (N, Q, C).

        ``attn_mask`` (Q, Q) and ``key_padding_mask`` (N, Q) (True: not attended) restrict the
        self-attention (used by denoising queries only)."""
        ref_input = ref_boxes[:, :, None] * torch.cat([valid_ratios, valid_ratios], -1)[:, None]
        sine = gen_sineembed_for_position(ref_input[:, :, 0, :], self.d_model // 2)
        raw_query_pos = self.ref_point_head(sine)
        query_pos = raw_query_pos if lid == 0 else self.query_scale(output) * raw_query_pos
        return self.layers[lid](output, query_pos, ref_input, memory, spatial_shapes, level_start_index,
                                padding_mask, key_padding_mask=key_padding_mask, attn_mask=attn_mask)


class ParSeDADecoder(nn.Module):
    """Parallel entity decoding + sequential relation decoding with DAB anchors.

    Args:
        num_queries: entity queries (2Q; 200 or 128); Q pairs.
        num_layers: layers of each decoder (3).
        d_model, d_ffn, dropout, n_levels, n_heads, n_points: layer settings (256, 2048, 0.0, 4, 8, 4).
        verb_query_tgt_type: ``"vanilla_MBF"`` (RLIPv2), ``"MBF"`` or ``"vanilla"``.
        mbf_cardinality: branches of the relation-query MBF (16).
    """

    def __init__(self, num_queries: int = 200, num_layers: int = 3, d_model: int = 256, d_ffn: int = 2048,
                 dropout: float = 0.0, n_levels: int = 4, n_heads: int = 8, n_points: int = 4,
                 verb_query_tgt_type: str = "vanilla_MBF", mbf_cardinality: int = 16):
        super().__init__()
        if num_queries % 2:
            raise ValueError(f"num_queries must be even (subject/object halves), got {num_queries}")
        if verb_query_tgt_type not in ("vanilla", "MBF", "vanilla_MBF"):
            raise ValueError(f"verb_query_tgt_type must be vanilla, MBF or vanilla_MBF, got {verb_query_tgt_type!r}")
        self.num_queries = num_queries
        self.num_layers = num_layers
        self.verb_query_tgt_type = verb_query_tgt_type
        self.entity_decoder = DABDecoder(num_layers, d_model, d_ffn, dropout, n_levels, n_heads, n_points)
        self.relation_decoder = DABDecoder(num_layers, d_model, d_ffn, dropout, n_levels, n_heads, n_points)
        self.relation_query_fusion = MultiBranchFusion(d_model, d_model, d_model, mbf_cardinality)
        # official xavier reset of the transformer (decoders + MBF) before the query embeddings exist
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        self.tgt_embed = nn.Embedding(num_queries, d_model)
        self.verb_tgt_embed = nn.Embedding(num_queries, d_model)
        self.refpoint_embed = nn.Embedding(num_queries, 4)
        box_head = MLP(d_model, d_model, 4, 3)
        nn.init.zeros_(box_head.layers[-1].weight)
        nn.init.zeros_(box_head.layers[-1].bias)
        self.sub_bbox_embed = nn.ModuleList(_clone(box_head) for _ in range(2 * num_layers))
        self.obj_bbox_embed = nn.ModuleList(_clone(box_head) for _ in range(2 * num_layers))
        nn.init.constant_(self.sub_bbox_embed[0].layers[-1].bias.data[2:], -2.0)
        nn.init.constant_(self.obj_bbox_embed[0].layers[-1].bias.data[2:], -2.0)

    def forward(self, memory, spatial_shapes, level_start_index, valid_ratios, padding_mask, denoising=None):
        """
        Args:
            memory (N, S, C), spatial_shapes (L, 2), level_start_index (L,), valid_ratios (N, L, 2),
            padding_mask (N, S) True on padding.
            denoising: optional extra pair queries appended after the Q matching pairs (training
                only; see :class:`rlipv2.modeling.pair_denoising.PairDenoising`): dict with ``sub_boxes``,
                ``obj_boxes`` (N, D, 4) normalised cxcywh anchors, ``sub_content``, ``obj_content``,
                ``rel_content`` (N, D, C), ``entity_attn_mask`` (2(Q+D), 2(Q+D)),
                ``relation_attn_mask`` (Q+D, Q+D) and ``key_padding_mask`` (N, Q+D) (True: blocked).
        Returns dict:
            ``hs_sub``, ``hs_obj`` (layers, N, Q, C) entity states; ``hs_rel`` (layers, N, Q, C);
            ``sub_boxes``, ``obj_boxes`` (layers, N, Q, 4) normalised cxcywh. With ``denoising``, Q is
            Q + D: the denoising pairs follow the matching ones.
        """
        n = memory.shape[0]
        q = self.num_queries // 2
        args = (memory, spatial_shapes, level_start_index, valid_ratios, padding_mask)
        output = self.tgt_embed.weight[None].expand(n, -1, -1)
        anchors = self.refpoint_embed.weight.sigmoid()
        ref_sub = anchors[None, :q].expand(n, -1, -1)
        ref_obj = anchors[None, q:].expand(n, -1, -1)
        ent_masks, rel_masks = {}, {}
        if denoising is not None:
            output = torch.cat([output[:, :q], denoising["sub_content"], output[:, q:], denoising["obj_content"]], 1)
            ref_sub = torch.cat([ref_sub, denoising["sub_boxes"]], 1)
            ref_obj = torch.cat([ref_obj, denoising["obj_boxes"]], 1)
            q = ref_sub.shape[1]
            pad = denoising["key_padding_mask"]
            ent_masks = {"attn_mask": denoising["entity_attn_mask"], "key_padding_mask": torch.cat([pad, pad], 1)}
            rel_masks = {"attn_mask": denoising["relation_attn_mask"], "key_padding_mask": pad}
        hs, sub_boxes, obj_boxes = [], [], []
        for lid in range(self.num_layers):
            output = self.entity_decoder.run_layer(lid, output, torch.cat([ref_sub, ref_obj], 1), *args, **ent_masks)
            hs.append(output)
            sub_box = (self.sub_bbox_embed[lid](output[:, :q]) + inverse_sigmoid(ref_sub)).sigmoid()
            obj_box = (self.obj_bbox_embed[lid](output[:, q:]) + inverse_sigmoid(ref_obj)).sigmoid()
            sub_boxes.append(sub_box)
            obj_boxes.append(obj_box)
            ref_sub, ref_obj = sub_box.detach(), obj_box.detach()

        last = hs[-1]
        qm = self.num_queries // 2  # matching pairs
        verb_tgt = self.verb_tgt_embed.weight
        tgt_a, tgt_b = verb_tgt[None, :qm], verb_tgt[None, qm:]
        if denoising is not None:
            rel_content = denoising["rel_content"]
            tgt_a = torch.cat([tgt_a.expand(n, -1, -1), rel_content], 1)
            tgt_b = torch.cat([tgt_b.expand(n, -1, -1), torch.zeros_like(rel_content)], 1)
        if self.verb_query_tgt_type == "vanilla":
            rel = (tgt_a + tgt_b).expand(n, -1, -1)
        elif self.verb_query_tgt_type == "MBF":
            rel = self.relation_query_fusion(last[:, :q], last[:, q:])
        else:
            rel = self.relation_query_fusion(last[:, :q], last[:, q:]) + tgt_a + tgt_b
        hs_rel = []
        for lid in range(self.num_layers):
            rel = self.relation_decoder.run_layer(lid, rel, 0.5 * (ref_sub + ref_obj), *args, **rel_masks)
            hs_rel.append(rel)
            k = self.num_layers + lid
            ref_sub = (self.sub_bbox_embed[k](rel) + inverse_sigmoid(ref_sub)).sigmoid().detach()
            ref_obj = (self.obj_bbox_embed[k](rel) + inverse_sigmoid(ref_obj)).sigmoid().detach()
        hs = torch.stack(hs)
        return {
            "hs_sub": hs[:, :, :q], "hs_obj": hs[:, :, q:], "hs_rel": torch.stack(hs_rel),
            "sub_boxes": torch.stack(sub_boxes), "obj_boxes": torch.stack(obj_boxes),
        }


def _clone(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module)
