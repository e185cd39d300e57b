"""R-Tagger queries: entity queries built from given (subject, object) pairs, and the training pair slots.

The R-Tagger (official ``--verb_tagger``, ``models/verb_tagger_helper.py::prepare_query``) has no learned
object queries. For image i with P_i <= Q pairs, pair p fills subject slot p and object slot Q + p:

    query_pos[slot] = coord_proj(inverse_sigmoid(box))        box: (noised) normalised cxcywh, Linear(4, C)
    tgt[slot]       = label_embeds[i, label]                  the detached, resized, fused label-text
                                                              embedding of the slot's (noised) class
    key_padding_mask[i, slot] = slot is empty                 (slot 0 stays unmasked when P_i = 0,
                                                              so that attention never sees an all-masked row)

Relation queries (``vanilla``): content = verb_tgt[:Q] + verb_tgt[Q:] of a learned Embedding(2Q, C); their
positional part (the sum of the last subject/object states) is made by the decoder.

Training noise (official defaults ``--box_noise_scale 0.4 --label_noise_scale 0.2``):

- boxes: ``box += U(-1, 1) * (w/2, h/2, w, h) * box_noise``, then clamped to [0, 1];
- labels: each subject / object label is replaced with probability ``label_noise`` by a uniformly drawn
  object label of the sequence (the official code draws from ``[0, batch_size)`` because it reads the
  class count from the wrong dimension; ``faithful_label_noise=True`` reproduces that).

Self-attention mask. The official code also builds a mask meant to stop queries with identical (label,
box) attending to each other, but its "slot is filled" test is a tensor-wide ``.all()``: the mask is
all False (inactive) as soon as any slot of any image in the batch is empty, and it is never used at
inference. By default only the padding mask is applied (the effective behaviour whenever a batch has an
image with fewer than Q pairs, and always at inference); ``official_attn_mask=True`` reproduces the
official all-or-nothing rule in training.

:func:`tagger_pair_slots` builds the training slots from the pair targets of :mod:`rlipv2.modeling.targets`
(official ``datasets/vg.py::VGRelTagger``): positive pairs first (a random Q of them when there are more),
then negative pairs (random ordered pairs of distinct boxes without a relation, all-zero relation rows)
up to Q slots.
"""
from __future__ import annotations

from itertools import permutations
from typing import Dict, List, Sequence

import torch
from torch import nn

from .mlp import inverse_sigmoid

__all__ = ["TaggerQueryGenerator", "tagger_pair_slots", "add_box_noise", "add_label_noise",
           "duplicate_entity_attn_mask", "xyxy_to_normalized_cxcywh"]


def xyxy_to_normalized_cxcywh(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(P, 4) absolute xyxy -> (P, 4) cxcywh normalised by the image size."""
    scale = boxes.new_tensor([width, height, width, height])
    x1, y1, x2, y2 = (boxes.float() / scale).unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)


def add_box_noise(boxes: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Jitter (P, 4) normalised cxcywh boxes: centre by +-scale*(w/2, h/2), size by +-scale*(w, h); clamp to [0, 1]."""
    if scale <= 0 or boxes.numel() == 0:
        return boxes
    diff = torch.cat([boxes[:, 2:] / 2, boxes[:, 2:]], -1)
    u = torch.rand(boxes.shape, generator=generator, device="cpu").to(boxes) * 2 - 1
    return (boxes + u * diff * scale).clamp(0.0, 1.0)


def add_label_noise(labels: torch.Tensor, prob: float, num_classes: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label with probability ``prob`` by a uniform draw from ``[0, num_classes)``."""
    if prob <= 0 or labels.numel() == 0 or num_classes <= 0:
        return labels
    flip = torch.rand(labels.shape, generator=generator, device="cpu").to(labels.device) < prob
    new = torch.randint(0, num_classes, labels.shape, generator=generator, device="cpu").to(labels)
    return torch.where(flip, new, labels)


def duplicate_entity_attn_mask(slot_labels: torch.Tensor, slot_boxes: torch.Tensor, filled: torch.Tensor,
                               num_heads: int) -> torch.Tensor | None:
    """The official training self-attention mask, with its all-or-nothing behaviour.

    Args:
        slot_labels: (N, 2Q) un-noised labels; slot_boxes: (N, 2Q, 4) un-noised boxes; filled: (N, 2Q) bool.
    Returns:
        None when any slot of the batch is empty (the official mask is then all False), else a bool
        (N * num_heads, 2Q, 2Q) mask, True where two different slots hold the same label and box.
    """
    if not bool(filled.all()):
        return None
    n, s = slot_labels.shape
    same = (slot_labels[:, :, None] == slot_labels[:, None, :]) & (
        slot_boxes[:, :, None] == slot_boxes[:, None, :]).all(-1)
    same &= ~torch.eye(s, dtype=torch.bool, device=same.device)[None]
    return same[:, None].expand(n, num_heads, s, s).reshape(n * num_heads, s, s)


class TaggerQueryGenerator(nn.Module):
    """Builds the R-Tagger's entity queries from pair slots (module docstring).

    Parameters ``coord_proj`` (Linear(4, C)) and ``verb_tgt`` (Embedding(2Q, C)) carry the official names
    (``transformer.coord_proj``, ``transformer.verb_tgt``).

    Args:
        num_queries: entity slots 2Q (200: 100 pairs).
        d_model: C.
        box_noise, label_noise: training noise scales (official argparse defaults 0.4 / 0.2; the training
            script passes 0.6 / 0.3).
        faithful_label_noise: draw noisy labels from ``[0, batch_size)`` as the official code does.
        official_attn_mask: apply the official duplicate-entity mask in training (see module docstring).
        num_heads: decoder self-attention heads (for the mask layout).
    """

    def __init__(self, num_queries: int = 200, d_model: int = 256, box_noise: float = 0.4, label_noise: float = 0.2,
                 faithful_label_noise: bool = False, official_attn_mask: bool = False, num_heads: int = 8):
        super().__init__()
        if num_queries % 2:
            raise ValueError(f"num_queries must be even (subjects + objects), got {num_queries}")
        self.num_queries = num_queries
        self.num_pairs = num_queries // 2
        self.box_noise = box_noise
        self.label_noise = label_noise
        self.faithful_label_noise = faithful_label_noise
        self.official_attn_mask = official_attn_mask
        self.num_heads = num_heads
        self.coord_proj = nn.Linear(4, d_model)
        self.verb_tgt = nn.Embedding(num_queries, d_model)

    def forward(self, label_embeds: torch.Tensor, pairs: Sequence[Dict[str, torch.Tensor]],
                num_object_labels: int | None = None, generator: torch.Generator | None = None) -> Dict:
        """
        Args:
            label_embeds: (N, E, C) label-text embeddings of the entity labels (objects + "no objects").
            pairs: N dicts with ``sub_boxes``, ``obj_boxes`` (P_i, 4) normalised cxcywh and ``sub_labels``,
                ``obj_labels`` (P_i,) indices into the entity labels; P_i <= Q.
            num_object_labels: labels noisy labels are drawn from (default E - 1: all but "no objects").
        Returns:
            dict with ``tgt``, ``query_pos`` (N, 2Q, C), ``key_padding_mask`` (N, 2Q) bool, ``attn_mask``
            (None or (N * heads, 2Q, 2Q)) and ``verb_tgt`` (2Q, C).
        """
        n, num_entity, c = label_embeds.shape
        if len(pairs) != n:
            raise ValueError(f"TaggerQueryGenerator: {len(pairs)} pair sets for {n} images")
        q, s = self.num_pairs, self.num_queries
        device = label_embeds.device
        tgt = label_embeds.new_zeros((n, s, c))
        pos = label_embeds.new_zeros((n, s, c))
        kpm = torch.ones((n, s), dtype=torch.bool, device=device)
        slot_labels = torch.full((n, s), -1, dtype=torch.int64, device=device)
        slot_boxes = torch.zeros((n, s, 4), device=device)
        num_noise_classes = n if self.faithful_label_noise else (
            num_object_labels if num_object_labels is not None else num_entity - 1)
        for i, t in enumerate(pairs):
            p = int(t["sub_boxes"].shape[0])
            if p > q:
                raise ValueError(f"image {i}: {p} pairs for {q} pair slots")
            if p == 0:
                kpm[i, 0] = False  # never an all-masked attention row (official guard)
                continue
            idx = torch.cat([torch.arange(p), q + torch.arange(p)]).to(device)
            boxes = torch.cat([t["sub_boxes"], t["obj_boxes"]]).to(device=device, dtype=torch.float32)
            labels = torch.cat([t["sub_labels"], t["obj_labels"]]).to(device=device, dtype=torch.int64)
            if labels.numel() and (labels.min() < 0 or labels.max() >= num_entity):
                raise ValueError(f"image {i}: pair labels outside the {num_entity} entity labels")
            slot_labels[i, idx], slot_boxes[i, idx] = labels, boxes
            if self.training:
                boxes = add_box_noise(boxes, self.box_noise, generator)
                labels = add_label_noise(labels, self.label_noise, num_noise_classes, generator)
            pos[i, idx] = self.coord_proj(inverse_sigmoid(boxes)).to(pos.dtype)
            tgt[i, idx] = label_embeds[i, labels]
            kpm[i, idx] = False
        attn_mask = None
        if self.training and self.official_attn_mask:
            attn_mask = duplicate_entity_attn_mask(slot_labels, slot_boxes, ~kpm, self.num_heads)
        return {"tgt": tgt, "query_pos": pos, "key_padding_mask": kpm, "attn_mask": attn_mask,
                "verb_tgt": self.verb_tgt.weight}


def tagger_pair_slots(target: Dict[str, torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor,
                      num_pairs: int = 100, generator: torch.Generator | None = None) -> Dict[str, torch.Tensor]:
    """Fill an image's pair slots for tagger training: positives, then negative pairs (official ``VGRelTagger``).

    Args:
        target: pair targets of one image (:func:`rlipv2.modeling.targets.build_pair_targets`), with ``pairs``.
        boxes: (K, 4) normalised cxcywh boxes of all instances; labels: (K,) their entity-label indices.
        num_pairs: Q slots. More positives than Q: a random Q of them. Fewer: random negative pairs (ordered
            pairs of distinct instances that are not a positive pair) fill the slots, as many as exist.
    Returns:
        a target dict of the same format with positives first, then negatives (all-zero ``verb_labels``),
        plus ``is_positive`` (P,) bool.
    """
    pos_pairs = target["pairs"]
    num_pos = int(pos_pairs.shape[0])
    device = target["verb_labels"].device
    keep = torch.arange(num_pos)
    if num_pos > num_pairs:
        keep = torch.randperm(num_pos, generator=generator)[:num_pairs].sort().values
    out = {k: v[keep.to(v.device)] for k, v in target.items()}
    num_neg = num_pairs - len(keep)
    neg: List[tuple] = []
    if num_neg > 0:
        taken = {tuple(p) for p in pos_pairs.tolist()}
        candidates = [pq for pq in permutations(range(int(boxes.shape[0])), 2) if pq not in taken]
        if len(candidates) > num_neg:
            pick = torch.randperm(len(candidates), generator=generator)[:num_neg].tolist()
            candidates = [candidates[j] for j in pick]
        neg = candidates
    is_pos = torch.zeros(len(keep) + len(neg), dtype=torch.bool, device=device)
    is_pos[: len(keep)] = True
    if neg:
        neg_t = torch.tensor(neg, dtype=torch.int64, device=device)
        boxes = boxes.to(device=device, dtype=torch.float32)
        labels = labels.to(device=device, dtype=torch.int64)
        r = out["verb_labels"].shape[1]
        out = {
            "sub_labels": torch.cat([out["sub_labels"], labels[neg_t[:, 0]]]),
            "obj_labels": torch.cat([out["obj_labels"], labels[neg_t[:, 1]]]),
            "verb_labels": torch.cat([out["verb_labels"], out["verb_labels"].new_zeros((len(neg), r))]),
            "sub_boxes": torch.cat([out["sub_boxes"], boxes[neg_t[:, 0]]]),
            "obj_boxes": torch.cat([out["obj_boxes"], boxes[neg_t[:, 1]]]),
            "pairs": torch.cat([out["pairs"], neg_t]),
        }
    out["is_positive"] = is_pos
    return out
