"""Pair denoising: DN-DETR-style training queries for the ParSeDA decoders (an extension, off by default).

Not part of RLIPv2; none of the paper configs uses it. It speeds up learning to localise pairs when a
model trains from scratch on little compute (``make demo``): besides the Q matching pairs, the decoder
gets, for each ground-truth pair p of an image, ``num_groups`` extra *denoising* pairs whose anchors are
the ground-truth subject and object boxes jittered (:func:`~rlipv2.modeling.tagger_queries.add_box_noise`,
centre by up to ``box_noise * (w/2, h/2)``, size by up to ``box_noise * (w, h)``). Denoising pair
``g * P + p`` of group g must reconstruct pair p (boxes, subject and object classes, relations) with
no Hungarian matching, as the R-Tagger does (Li et al., "DN-DETR", CVPR 2022).

Attention masks keep the matching queries blind to the denoising ones (they would otherwise see the
answer) and each group blind to the other groups; empty slots (images with fewer than P pairs) are
masked as keys. At inference, or with ``num_groups=0``, nothing changes: the decoder and the
checkpoint layout are those of the official model (the module only adds ``content`` and
``rel_content`` embeddings).

Query layout (P = the largest number of pairs of an image in the batch, D = num_groups * P)::

    entity decoder    [sub matching (Q) | sub denoising (D) | obj matching (Q) | obj denoising (D)]
    relation decoder  [matching (Q) | denoising (D)]
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
from torch import nn

from .tagger_queries import add_box_noise

__all__ = ["PairDenoising"]

_OUTPUT_KEYS = ("pred_sub_logits", "pred_obj_logits", "pred_verb_logits", "pred_sub_boxes", "pred_obj_boxes")


class PairDenoising(nn.Module):
    """Builds denoising pair queries from the pair targets, splits the outputs and scores them.

    Args:
        d_model: decoder width.
        num_groups: copies of each ground-truth pair, each with its own noise (0 disables denoising).
        box_noise: jitter scale of the anchors (0.4, as DN-DETR and the R-Tagger).
        loss_weight: factor on the denoising losses (each also takes the criterion's weight).
    """

    def __init__(self, d_model: int = 256, num_groups: int = 2, box_noise: float = 0.4, loss_weight: float = 1.0):
        super().__init__()
        if num_groups < 0:
            raise ValueError(f"PairDenoising: num_groups must be >= 0, got {num_groups}")
        if box_noise < 0:
            raise ValueError(f"PairDenoising: box_noise must be >= 0, got {box_noise}")
        self.num_groups = num_groups
        self.box_noise = box_noise
        self.loss_weight = loss_weight
        self.content = nn.Embedding(2, d_model)  # subject, object
        self.rel_content = nn.Embedding(1, d_model)

    # ------------------------------------------------------------------ queries
    def max_pairs(self, targets: Sequence[Dict[str, torch.Tensor]]) -> int:
        return max((len(t["obj_labels"]) for t in targets), default=0)

    def queries(self, targets: Sequence[Dict[str, torch.Tensor]], num_matching: int,
                device: torch.device | None = None) -> dict | None:
        """Denoising queries for ``ParSeDADecoder.forward(denoising=...)``, or None (no pairs / disabled).

        Args:
            targets: pair targets (:mod:`rlipv2.modeling.targets`), one dict per image.
            num_matching: Q, the number of matching pairs of the decoder.
        """
        p = self.max_pairs(targets)
        if self.num_groups == 0 or p == 0 or not self.training:
            return None
        device = device or self.content.weight.device
        n, g, d = len(targets), self.num_groups, self.num_groups * p
        placeholder = torch.tensor([0.5, 0.5, 0.1, 0.1], device=device)  # anchor of empty slots (masked anyway)
        sub_boxes, obj_boxes = placeholder.repeat(n, d, 1), placeholder.repeat(n, d, 1)
        empty = torch.ones(n, d, dtype=torch.bool, device=device)
        for i, t in enumerate(targets):
            k = len(t["obj_labels"])
            if k == 0:
                continue
            sub, obj = t["sub_boxes"].to(device).float(), t["obj_boxes"].to(device).float()
            missing = obj.abs().sum(-1) == 0  # V-COCO pairs without an object
            for grp in range(g):
                rows = slice(grp * p, grp * p + k)
                sub_boxes[i, rows] = add_box_noise(sub, self.box_noise).clamp(1e-3, 1.0)
                noisy_obj = add_box_noise(obj, self.box_noise).clamp(1e-3, 1.0)
                obj_boxes[i, rows] = torch.where(missing[:, None], sub_boxes[i, rows], noisy_obj)
                empty[i, rows] = False
        # the group of each query: -1 matching, g for denoising group g
        group = torch.cat([torch.full((num_matching,), -1, device=device),
                           torch.arange(g, device=device).repeat_interleave(p)])
        rel_mask, ent_mask = _blocked(group), _blocked(torch.cat([group, group]))
        pad = torch.cat([torch.zeros(n, num_matching, dtype=torch.bool, device=device), empty], 1)
        c = self.content.weight
        return {
            "sub_boxes": sub_boxes, "obj_boxes": obj_boxes,
            "sub_content": c[0].expand(n, d, -1), "obj_content": c[1].expand(n, d, -1),
            "rel_content": self.rel_content.weight[0].expand(n, d, -1),
            "entity_attn_mask": ent_mask, "relation_attn_mask": rel_mask, "key_padding_mask": pad,
            "num_pairs": p,
        }

    # ------------------------------------------------------------------ outputs and losses
    @staticmethod
    def split_outputs(outputs: dict, num_matching: int) -> Tuple[dict, dict]:
        """Split a raw output dict over Q + D pairs into (matching outputs, denoising outputs)."""
        def split(d):
            a, b = dict(d), {}
            for k in _OUTPUT_KEYS:
                if k in d:
                    a[k], b[k] = d[k][:, :num_matching], d[k][:, num_matching:]
            return a, b

        match, dn = split(outputs)
        aux = [split(x) for x in outputs.get("aux_outputs", [])]
        match["aux_outputs"] = [a for a, _ in aux]
        dn["aux_outputs"] = [b for _, b in aux]
        return match, dn

    def losses(self, dn_outputs: dict, targets: Sequence[Dict[str, torch.Tensor]], num_pairs: int,
               weight_dict: Dict[str, float] | None = None, eos_coef: float = 0.1) -> Dict[str, torch.Tensor]:
        """Weighted denoising losses ``loss_dn_*`` (every decoder layer, averaged over groups).

        Each group of P slots is scored slot p against pair p, with the R-Tagger's losses
        (:class:`~rlipv2.modeling.criterion.TaggerCriterion`: box L1 + GIoU, subject and object
        cross-entropy, focal relation loss) and the matching criterion's ``weight_dict`` / ``eos_coef``.
        """
        from .criterion import TaggerCriterion, num_interactions_across_processes

        criterion = TaggerCriterion(weight_dict=weight_dict, eos_coef=eos_coef, aux_loss=False)
        device = dn_outputs["pred_verb_logits"].device
        num_interactions = num_interactions_across_processes(targets, device)
        layers = [dn_outputs] + list(dn_outputs.get("aux_outputs", []))
        total: Dict[str, torch.Tensor] = {}
        for lid, layer in enumerate(layers):
            suffix = "" if lid == 0 else f"_{lid - 1}"
            for grp in range(self.num_groups):
                sl = {k: v[:, grp * num_pairs:(grp + 1) * num_pairs].float()
                      for k, v in layer.items() if k in _OUTPUT_KEYS}
                weighted = criterion.weighted_losses(criterion.layer_losses(sl, targets, num_interactions, log=False))
                for k, v in weighted.items():
                    key = k.replace("loss_", "loss_dn_", 1) + suffix
                    total[key] = total.get(key, 0.0) + v * (self.loss_weight / self.num_groups)
        return total


def _blocked(group: torch.Tensor) -> torch.Tensor:
    """(M, M) self-attention mask, True = blocked, for queries of ``group`` (M,) (-1 matching, g >= 0 the
    denoising group): matching queries never see denoising ones, and groups never see each other."""
    return (group[None, :] >= 0) & (group[:, None] != group[None, :])
