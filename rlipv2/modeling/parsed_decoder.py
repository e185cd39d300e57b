"""ParSeD decoders (plain Deformable-DETR, no DAB anchors): the decoders of RLIPv2-ParSeD and of the
R-Tagger (official ``RLIP_ParSeDTransformer_v2`` + ``TransformerDecoderHOI``).

Entity decoder: queries (N, 2Q, C) with an explicit positional embedding ``query_pos``; the initial
references are 2-d points ``sigmoid(reference_points_sub(query_pos[:, :Q]))`` (objects likewise).
After each layer the boxes are refined: at layer 0 ``box = sigmoid(bbox_embed(h) + [inverse_sigmoid(
point), 0, 0])`` (only the centre is offset), later ``sigmoid(bbox_embed(h) + inverse_sigmoid(box))``;
the detached boxes are the next references (4-d from layer 1 on).
Relation decoder: Q queries, content from ``verb_query_tgt_type`` (``vanilla``: the two halves of the
relation target embedding; ``MBF``/``vanilla_MBF``: multi-branch fusion of the last subject and object
states, plus the halves for ``vanilla_MBF``), positional embedding ``h_sub + h_obj`` (``vanilla``) or a
learned ``verb_query_embed``; reference = mean of its subject and object references, refined by box
heads ``L..2L-1`` (detached).
"""
from __future__ import annotations

import torch
from torch import nn

from rlipv2.layers import MSDeformAttn

from .mlp import MLP, MultiBranchFusion, inverse_sigmoid
from .parseda_decoder import DeformableDecoderLayer, _clone

__all__ = ["ParSeDDecoder"]


class ParSeDDecoder(nn.Module):
    """Parallel entity decoding + sequential relation decoding, Deformable-DETR style.

    Args:
        num_queries: entity queries 2Q (200 for the R-Tagger).
        num_layers, d_model, d_ffn, dropout, n_levels, n_heads, n_points: layer settings
            (R-Tagger: 3, 256, 1024, 0.1, 4, 8, 4).
        verb_query_tgt_type: ``"vanilla"`` (R-Tagger default), ``"MBF"`` or ``"vanilla_MBF"`` (RLIPv2-ParSeD).
        learned_queries: own ``query_embed`` (2Q, 3C) = (positional, content, relation target) as RLIPv2-ParSeD;
            False when the queries are given to :meth:`forward` (R-Tagger).
    """

    def __init__(self, num_queries: int = 200, num_layers: int = 3, d_model: int = 256, d_ffn: int = 1024,
                 dropout: float = 0.1, n_levels: int = 4, n_heads: int = 8, n_points: int = 4,
                 verb_query_tgt_type: str = "vanilla", mbf_cardinality: int = 16, learned_queries: bool = True):
        super().__init__()
        if verb_query_tgt_type not in ("vanilla", "MBF", "vanilla_MBF"):
            raise ValueError(f"verb_query_tgt_type must be vanilla, MBF or vanilla_MBF, got {verb_query_tgt_type!r}")
        self.num_queries, self.num_layers = num_queries, num_layers
        self.verb_query_tgt_type = verb_query_tgt_type

        def layers():
            return nn.ModuleList(DeformableDecoderLayer(d_model, d_ffn, dropout, n_levels, n_heads, n_points)
                                 for _ in range(num_layers))

        self.entity_layers = layers()
        self.relation_layers = layers()
        self.reference_points_sub = nn.Linear(d_model, 2)
        self.reference_points_obj = nn.Linear(d_model, 2)
        if "MBF" in verb_query_tgt_type:
            self.relation_query_fusion = MultiBranchFusion(d_model, d_model, d_model, mbf_cardinality)
            self.verb_query_embed = nn.Embedding(num_queries // 2, d_model)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        self.d_model = d_model
        self.query_embed = nn.Embedding(num_queries, 3 * d_model) if learned_queries else None
        box_head = MLP(d_model, d_model, 4, 3)
        nn.init.zeros_(box_head.layers[-1].weight)
        nn.init.zeros_(box_head.layers[-1].bias)
        self.sub_bbox_embed = nn.ModuleList(_clone(box_head) for _ in range(2 * num_layers))
        self.obj_bbox_embed = nn.ModuleList(_clone(box_head) for _ in range(2 * num_layers))
        nn.init.constant_(self.sub_bbox_embed[0].layers[-1].bias.data[2:], -2.0)
        nn.init.constant_(self.obj_bbox_embed[0].layers[-1].bias.data[2:], -2.0)

    @staticmethod
    def _refine(head, h, ref):
        delta = head(h)
        if ref.shape[-1] == 4:
            return (delta + inverse_sigmoid(ref)).sigmoid()
        return torch.cat([delta[..., :2] + inverse_sigmoid(ref), delta[..., 2:]], -1).sigmoid()

    @staticmethod
    def _ref_input(ref, valid_ratios):
        vr = valid_ratios if ref.shape[-1] == 2 else torch.cat([valid_ratios, valid_ratios], -1)
        return ref[:, :, None] * vr[:, None]

    def forward(self, memory, spatial_shapes, level_start_index, valid_ratios, padding_mask, tgt=None,
                query_pos=None, verb_tgt=None, key_padding_mask=None, attn_mask=None):
        """
        Args:
            memory, spatial_shapes, level_start_index, valid_ratios, padding_mask: encoder outputs.
            tgt, query_pos: (N, 2Q, C) entity content and positional queries (subjects first); default: the
                learned ``query_embed`` split into (positional, content, relation target).
            verb_tgt: (2Q, C) relation target embedding (its two halves are summed).
            key_padding_mask: (N, 2Q) True on empty query slots (R-Tagger); attn_mask: optional.
        Returns dict like :class:`~rlipv2.modeling.parseda_decoder.ParSeDADecoder`, plus ``init_sub_ref`` /
        ``init_obj_ref`` (N, Q, 2).
        """
        if tgt is None:
            if self.query_embed is None:
                raise ValueError("ParSeDDecoder(learned_queries=False) needs tgt, query_pos and verb_tgt")
            n = memory.shape[0]
            pos_w, tgt_w, verb_tgt = torch.split(self.query_embed.weight, self.d_model, dim=1)
            query_pos, tgt = pos_w[None].expand(n, -1, -1), tgt_w[None].expand(n, -1, -1)
        q = tgt.shape[1] // 2
        enc = (memory, spatial_shapes, level_start_index, padding_mask)
        ref_sub = self.reference_points_sub(query_pos[:, :q]).sigmoid()
        ref_obj = self.reference_points_obj(query_pos[:, q:]).sigmoid()
        init = (ref_sub, ref_obj)
        output, hs, sub_boxes, obj_boxes = tgt, [], [], []
        for lid, layer in enumerate(self.entity_layers):
            ref_in = torch.cat([self._ref_input(ref_sub, valid_ratios), self._ref_input(ref_obj, valid_ratios)], 1)
            output = layer(output, query_pos, ref_in, memory, spatial_shapes, level_start_index, padding_mask,
                           key_padding_mask=key_padding_mask, attn_mask=attn_mask)
            hs.append(output)
            sub_box = self._refine(self.sub_bbox_embed[lid], output[:, :q], ref_sub)
            obj_box = self._refine(self.obj_bbox_embed[lid], output[:, q:], ref_obj)
            sub_boxes.append(sub_box)
            obj_boxes.append(obj_box)
            ref_sub, ref_obj = sub_box.detach(), obj_box.detach()

        last = hs[-1]
        halves = (verb_tgt[:q] + verb_tgt[q:])[None].expand(tgt.shape[0], -1, -1)
        if self.verb_query_tgt_type == "vanilla":
            rel, rel_pos = halves, last[:, :q] + last[:, q:]
        else:
            rel = self.relation_query_fusion(last[:, :q], last[:, q:])
            if self.verb_query_tgt_type == "vanilla_MBF":
                rel = rel + halves
            rel_pos = self.verb_query_embed.weight[None].expand(tgt.shape[0], -1, -1)
        rel_kpm = key_padding_mask[:, :q] if key_padding_mask is not None else None
        hs_rel = []
        for lid, layer in enumerate(self.relation_layers):
            ref_in = self._ref_input(0.5 * (ref_sub + ref_obj), valid_ratios)
            rel = layer(rel, rel_pos, ref_in, *enc[:3], enc[3], key_padding_mask=rel_kpm)
            hs_rel.append(rel)
            k = self.num_layers + lid
            ref_sub = self._refine(self.sub_bbox_embed[k], rel, ref_sub).detach()
            ref_obj = self._refine(self.obj_bbox_embed[k], rel, ref_obj).detach()
        hs = torch.stack(hs)
        return {"hs_sub": hs[:, :, :q], "hs_obj": hs[:, :, q:], "hs_rel": torch.stack(hs_rel),
                "sub_boxes": torch.stack(sub_boxes), "obj_boxes": torch.stack(obj_boxes),
                "init_sub_ref": init[0], "init_obj_ref": init[1]}
