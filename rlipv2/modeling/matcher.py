"""Hungarian matching between predicted (subject, object, relations) triplets and ground-truth pairs.

The cost of assigning query q to ground-truth pair j (RLIPv2's ``HungarianMatcherHOI``):

    C = w_cls * (-p_obj[q, c_o]) + w_cls * (-p_sub[q, c_s])                 # subject term optional
      + w_verb * C_verb
      + w_l1   * max(L1_sub, L1_obj * [object exists])
      + w_giou * max(-GIoU_sub, -GIoU_obj + (-GIoU_sub) * [object missing])

with p = softmax over the entity part of the label sequence ("no objects" included) and, for
relations (p = sigmoid),

    C_verb = -1/2 * [ sum_v p_v y_v / (sum_v y_v + 1e-4) + sum_v (1 - p_v)(1 - y_v) / (sum_v (1 - y_v) + 1e-4) ].

Matching is one-to-one per image (``scipy.optimize.linear_sum_assignment``); queries left unmatched
are "no objects". Targets use the format documented in :mod:`rlipv2.modeling.targets`.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision.ops import generalized_box_iou

from .box_ops import cxcywh_to_xyxy, missing_box_mask

__all__ = ["HungarianMatcherHOI"]

MatchIndices = List[Tuple[torch.Tensor, torch.Tensor]]


class HungarianMatcherHOI(nn.Module):
    """One-to-one assignment of queries to ground-truth (subject, object, relations) pairs.

    Args:
        cost_obj_class: weight of the entity-class cost (also used for the subject term).
        cost_verb_class: weight of the relation cost.
        cost_bbox: weight of the L1 box cost (max over subject and object).
        cost_giou: weight of the GIoU cost (max over subject and object).
        subject_class: add the subject-class term (needs ``pred_sub_logits``); off for the few-shot
            recipes, which have no subject classifier supervision.
        cost_sub_class: weight of the subject term; defaults to ``cost_obj_class`` (official behaviour).
    """

    def __init__(
        self,
        cost_obj_class: float = 1.0,
        cost_verb_class: float = 1.0,
        cost_bbox: float = 2.5,
        cost_giou: float = 1.0,
        subject_class: bool = True,
        cost_sub_class: float | None = None,
    ):
        super().__init__()
        self.cost_obj_class = cost_obj_class
        self.cost_verb_class = cost_verb_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou
        self.subject_class = subject_class
        self.cost_sub_class = cost_obj_class if cost_sub_class is None else cost_sub_class
        if not any((cost_obj_class, cost_verb_class, cost_bbox, cost_giou)):
            raise ValueError("HungarianMatcherHOI: all costs are 0")

    @torch.no_grad()
    def cost_terms(self, outputs: Dict[str, torch.Tensor], targets: Sequence[Dict[str, torch.Tensor]]):
        """Unweighted cost terms over the whole batch.

        Args:
            outputs: ``pred_obj_logits`` (N, Q, K+1), ``pred_verb_logits`` (N, Q, R), ``pred_sub_boxes`` and
                ``pred_obj_boxes`` (N, Q, 4) normalised cxcywh, and ``pred_sub_logits`` (N, Q, K+1) when
                ``subject_class``.
            targets: N dicts with ``obj_labels`` (P_i,), ``sub_labels`` (P_i,), ``verb_labels`` (P_i, R),
                ``sub_boxes`` and ``obj_boxes`` (P_i, 4).

        Returns:
            dict of (N*Q, sum P_i) tensors: ``obj_class``, ``sub_class`` (if used), ``verb_class``,
            ``bbox``, ``sub_bbox``, ``obj_bbox``, ``giou``, ``sub_giou``, ``obj_giou``.
        """
        # float32 whatever the model's precision (AMP): the costs are cheap and fp16 would round them.
        out_obj_prob = outputs["pred_obj_logits"].flatten(0, 1).float().softmax(-1)
        out_verb_prob = outputs["pred_verb_logits"].flatten(0, 1).float().sigmoid()
        out_sub_box = outputs["pred_sub_boxes"].flatten(0, 1).float()
        out_obj_box = outputs["pred_obj_boxes"].flatten(0, 1).float()
        num_rel = out_verb_prob.shape[-1]
        for i, t in enumerate(targets):
            if t["verb_labels"].shape[-1] != num_rel:
                raise ValueError(
                    f"HungarianMatcherHOI: targets[{i}]['verb_labels'] has {t['verb_labels'].shape[-1]} relation "
                    f"columns but pred_verb_logits has {num_rel}"
                )

        tgt_obj_labels = torch.cat([t["obj_labels"] for t in targets])
        tgt_verb = torch.cat([t["verb_labels"] for t in targets]).to(out_verb_prob.dtype).t()  # (R, P)
        tgt_sub_box = torch.cat([t["sub_boxes"] for t in targets]).to(out_sub_box.dtype)
        tgt_obj_box = torch.cat([t["obj_boxes"] for t in targets]).to(out_obj_box.dtype)

        costs = {"obj_class": -out_obj_prob[:, tgt_obj_labels]}
        if self.subject_class:
            out_sub_prob = outputs["pred_sub_logits"].flatten(0, 1).float().softmax(-1)
            tgt_sub_labels = torch.cat([t["sub_labels"] for t in targets])
            costs["sub_class"] = -out_sub_prob[:, tgt_sub_labels]

        pos = out_verb_prob @ tgt_verb / (tgt_verb.sum(dim=0, keepdim=True) + 1e-4)
        neg = (1 - out_verb_prob) @ (1 - tgt_verb) / ((1 - tgt_verb).sum(dim=0, keepdim=True) + 1e-4)
        costs["verb_class"] = -(pos + neg) / 2

        missing = missing_box_mask(tgt_obj_box)  # (P,)
        sub_bbox = torch.cdist(out_sub_box, tgt_sub_box, p=1)
        obj_bbox = torch.cdist(out_obj_box, tgt_obj_box, p=1) * (~missing).to(out_obj_box.dtype)[None]
        sub_giou = -generalized_box_iou(cxcywh_to_xyxy(out_sub_box), cxcywh_to_xyxy(tgt_sub_box))
        obj_giou = -generalized_box_iou(cxcywh_to_xyxy(out_obj_box), cxcywh_to_xyxy(tgt_obj_box))
        obj_giou = obj_giou + sub_giou * missing.to(obj_giou.dtype)[None]
        costs.update(
            bbox=torch.maximum(sub_bbox, obj_bbox),
            sub_bbox=sub_bbox,
            obj_bbox=obj_bbox,
            giou=torch.maximum(sub_giou, obj_giou),
            sub_giou=sub_giou,
            obj_giou=obj_giou,
        )
        return costs

    @torch.no_grad()
    def cost_matrix(self, outputs: Dict[str, torch.Tensor], targets: Sequence[Dict[str, torch.Tensor]]) -> torch.Tensor:
        """Weighted cost, (N*Q, sum P_i)."""
        c = self.cost_terms(outputs, targets)
        total = (
            self.cost_obj_class * c["obj_class"]
            + self.cost_verb_class * c["verb_class"]
            + self.cost_bbox * c["bbox"]
            + self.cost_giou * c["giou"]
        )
        if self.subject_class:
            total = total + self.cost_sub_class * c["sub_class"]
        return total

    @torch.no_grad()
    def forward(self, outputs: Dict[str, torch.Tensor], targets: Sequence[Dict[str, torch.Tensor]]) -> MatchIndices:
        """Match each image's queries to its ground-truth pairs.

        Returns:
            N tuples ``(query_idx, target_idx)``, int64 tensors of length min(Q, P_i), on CPU.
        """
        n, q = outputs["pred_obj_logits"].shape[:2]
        if len(targets) != n:
            raise ValueError(f"HungarianMatcherHOI: {len(targets)} targets for a batch of {n}")
        sizes = [len(t["obj_labels"]) for t in targets]
        empty = torch.empty(0, dtype=torch.int64)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in targets]
        cost = self.cost_matrix(outputs, targets).view(n, q, -1).cpu()
        if not torch.isfinite(cost).all():
            raise FloatingPointError("HungarianMatcherHOI: the cost matrix has NaN or Inf (diverged predictions?)")
        indices = []
        for i, c in enumerate(cost.split(sizes, dim=-1)):
            rows, cols = linear_sum_assignment(c[i].numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return indices
