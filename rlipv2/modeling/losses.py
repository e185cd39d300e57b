"""Loss functions of RLIPv2, as small reusable functions (formulas in docs/losses.md).

Shapes use P = number of (subject, object) pairs, R = number of relation labels in the label
sequence, C = number of entity classes including the final "no objects" column.

- :func:`focal_relation_loss`: CornerNet-style focal loss on relation probabilities (``_neg_loss``).
- :func:`quality_focal_loss`: quality focal loss with soft targets (``_soft_neg_loss``, used by RQL).
- :func:`relational_quality_scores`: RQL's GIoU quality s = (min(GIoU_sub, GIoU_obj) + 1) / 2.
- :func:`relation_text_similarity`, :func:`relational_pseudo_labels`: RPL's text-similarity pseudo labels.
- :func:`entity_cross_entropy`: softmax cross-entropy with a down-weighted "no objects" class.
- :func:`pair_box_losses`: L1 and GIoU losses of subject and object boxes with missing-object masking.
- :func:`classification_error`: top-1 error in percent, for logging.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from .box_ops import cxcywh_to_xyxy, missing_box_mask, paired_generalized_box_iou

__all__ = [
    "focal_relation_loss",
    "quality_focal_loss",
    "relational_quality_scores",
    "relation_text_similarity",
    "relational_pseudo_labels",
    "entity_cross_entropy",
    "pair_box_losses",
    "classification_error",
]


def focal_relation_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """CornerNet-style focal loss on probabilities (the official ``_neg_loss``).

    L = -[ sum_{t=1} (1-p)^2 log p + sum_{t<1} p^2 (1-t)^4 log(1-p) ] / max(#{t=1}, 1)

    Args:
        prob: (..., R) probabilities (sigmoid of the relation logits).
        target: (..., R) targets in [0, 1]; entries equal to 1 are positives.
        eps: probabilities are clamped to [eps, 1 - eps].

    Returns:
        Scalar loss. Without positives the negative sum alone is returned (division by 1).
    """
    pos = target.eq(1).to(prob.dtype)
    neg = target.lt(1).to(prob.dtype)
    p = prob.clamp(eps, 1.0 - eps)
    pos_loss = (torch.log(p) * (1 - p).pow(2) * pos).sum()
    neg_loss = (torch.log(1 - p) * p.pow(2) * (1 - target).pow(4) * neg).sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp(min=1)


def quality_focal_loss(prob: torch.Tensor, target: torch.Tensor, beta: float = 2.0, eps: float = 1e-6) -> torch.Tensor:
    """Quality focal loss with soft targets (the official ``_soft_neg_loss``; RQL/RPL use it).

    L = -sum |t - p|^beta [ t log p + (1 - t) log(1 - p) ] / max(#{t > 0}, 1)

    Args:
        prob: (..., R) probabilities.
        target: (..., R) soft targets in [0, 1].
        beta: focusing exponent (2 in RLIP).
        eps: probabilities are clamped to [eps, 1 - eps].
    """
    p = prob.clamp(eps, 1.0 - eps)
    loss = (target - p).abs().pow(beta) * (target * torch.log(p) + (1 - target) * torch.log(1 - p))
    num_pos = target.gt(0).sum().clamp(min=1)
    return -loss.sum() / num_pos


@torch.no_grad()
def relational_quality_scores(
    src_sub_boxes: torch.Tensor,
    src_obj_boxes: torch.Tensor,
    tgt_sub_boxes: torch.Tensor,
    tgt_obj_boxes: torch.Tensor,
) -> torch.Tensor:
    """RQL quality of matched pairs: s = (min(GIoU_sub, GIoU_obj) + 1) / 2, detached.

    This is what the official code obtains from the matcher's GIoU cost (``-max(-GIoU_sub, -GIoU_obj')``).
    For a missing object (all-zero target box) the matcher's object GIoU term is
    ``GIoU(pred_obj, 0-box) + GIoU_sub``, hence s = (GIoU_sub + GIoU(pred_obj, 0-box) + 1) / 2; the
    official code asserts s in [0, 1], here it is clamped (V-COCO, the only dataset with missing objects,
    does not use RQL).

    Args:
        src_sub_boxes, src_obj_boxes: (P, 4) matched predictions, normalised cxcywh.
        tgt_sub_boxes, tgt_obj_boxes: (P, 4) matched targets, normalised cxcywh.

    Returns:
        (P,) scores in [0, 1].
    """
    g_sub = paired_generalized_box_iou(cxcywh_to_xyxy(src_sub_boxes), cxcywh_to_xyxy(tgt_sub_boxes))
    g_obj = paired_generalized_box_iou(cxcywh_to_xyxy(src_obj_boxes), cxcywh_to_xyxy(tgt_obj_boxes))
    missing = missing_box_mask(tgt_obj_boxes)
    g_obj = torch.where(missing, g_obj + g_sub, g_obj)
    return ((torch.minimum(g_sub, g_obj) + 1) / 2).clamp(0, 1)


def relation_text_similarity(text_embeddings: torch.Tensor) -> torch.Tensor:
    """RPL similarity between relation texts: sim_ij = max_k d_ik - d_ij, d = Euclidean distance.

    The distance is ``F.pairwise_distance`` (which adds eps = 1e-6 to the difference), as in the
    official code, so d_ii is about 1e-6 * sqrt(D), not exactly 0.

    Args:
        text_embeddings: (R, D) pooled relation-text embeddings taken before the fusion (768-d).

    Returns:
        (R, R) similarities, >= 0, larger for closer texts.
    """
    d = F.pairwise_distance(text_embeddings.unsqueeze(1), text_embeddings.unsqueeze(0), p=2)
    return d.max(dim=-1, keepdim=True)[0] - d


def relational_pseudo_labels(
    verb_labels: torch.Tensor,
    text_embeddings: torch.Tensor | None = None,
    threshold: float = 0.3,
    similarity: torch.Tensor | None = None,
) -> torch.Tensor:
    """RPL pseudo relation labels for every ground-truth pair (``target_verb_sim`` of the official code).

    For each pair with (multi-hot or soft) labels y:
      1. r = sum_v y_v * sim[v, :]
      2. r = r / max(r)
      3. r[y != 0] = 0   (ground-truth relations keep their own label)
      4. r = r * [r > threshold]

    A pair whose r is all zeros (no labels) gets zeros here; the official code divides 0 by 0 (NaN).

    Args:
        verb_labels: (P, R) relation targets of the pairs.
        text_embeddings: (R, D) pre-fusion relation text embeddings (used when ``similarity`` is None).
        threshold: pseudo labels not above it are dropped (0.3).
        similarity: optional precomputed (R, R) :func:`relation_text_similarity`.

    Returns:
        (P, R) pseudo labels in [0, 1], zero on the ground-truth relations.
    """
    if similarity is None:
        if text_embeddings is None:
            raise ValueError("relational_pseudo_labels: give text_embeddings or similarity")
        similarity = relation_text_similarity(text_embeddings)
    if verb_labels.shape[-1] != similarity.shape[0]:
        raise ValueError(
            f"relational_pseudo_labels: verb_labels has {verb_labels.shape[-1]} relation columns but the "
            f"similarity matrix is for {similarity.shape[0]} relation texts"
        )
    r = verb_labels.to(similarity.dtype) @ similarity
    row_max = r.max(dim=-1, keepdim=True)[0] if r.shape[0] > 0 else r.new_ones((0, 1))
    r = torch.where(row_max > 0, r / torch.where(row_max > 0, row_max, torch.ones_like(row_max)), torch.zeros_like(r))
    r = r.masked_fill(verb_labels != 0, 0.0)
    return r * (r > threshold)


def entity_cross_entropy(logits: torch.Tensor, target_classes: torch.Tensor, eos_coef: float = 0.1) -> torch.Tensor:
    """Softmax cross-entropy over [labels..., "no objects"] with the last class weighted by ``eos_coef``.

    The reduction is PyTorch's weighted mean: sum_i w_{t_i} * nll_i / sum_i w_{t_i}.

    Args:
        logits: (..., C) entity logits; the last column is "no objects".
        target_classes: (...) int64 targets in [0, C).
        eos_coef: class weight of "no objects" (0.1).
    """
    num_classes = logits.shape[-1]
    weight = torch.ones(num_classes, dtype=logits.dtype, device=logits.device)
    weight[-1] = eos_coef
    return F.cross_entropy(logits.reshape(-1, num_classes), target_classes.reshape(-1), weight)


def pair_box_losses(
    src_sub_boxes: torch.Tensor,
    src_obj_boxes: torch.Tensor,
    tgt_sub_boxes: torch.Tensor,
    tgt_obj_boxes: torch.Tensor,
    num_interactions: float,
) -> Dict[str, torch.Tensor]:
    """L1 and GIoU losses of matched subject and object boxes.

    Subject terms are summed and divided by ``num_interactions`` (the batch-wide pair count, averaged
    over processes). Object terms skip missing objects (all-zero target box) and are divided by the
    local number of existing objects + 1e-4, as in the official code.

    Args:
        src_*: (P, 4) matched predictions, normalised cxcywh.
        tgt_*: (P, 4) matched targets, normalised cxcywh; an all-zero object box is a missing object.
        num_interactions: normaliser of the subject terms (>= 1).

    Returns:
        dict with ``loss_sub_bbox``, ``loss_obj_bbox``, ``loss_sub_giou``, ``loss_obj_giou`` (scalars).
    """
    if src_sub_boxes.shape[0] == 0:
        zero_sub, zero_obj = src_sub_boxes.sum(), src_obj_boxes.sum()
        return {
            "loss_sub_bbox": zero_sub,
            "loss_obj_bbox": zero_obj,
            "loss_sub_giou": zero_sub,
            "loss_obj_giou": zero_obj,
        }
    exists = (~missing_box_mask(tgt_obj_boxes)).to(src_obj_boxes.dtype)
    num_exist = exists.sum() + 1e-4
    l1_sub = F.l1_loss(src_sub_boxes, tgt_sub_boxes, reduction="none")
    l1_obj = F.l1_loss(src_obj_boxes, tgt_obj_boxes, reduction="none")
    giou_sub = 1 - paired_generalized_box_iou(cxcywh_to_xyxy(src_sub_boxes), cxcywh_to_xyxy(tgt_sub_boxes))
    giou_obj = 1 - paired_generalized_box_iou(cxcywh_to_xyxy(src_obj_boxes), cxcywh_to_xyxy(tgt_obj_boxes))
    return {
        "loss_sub_bbox": l1_sub.sum() / num_interactions,
        "loss_obj_bbox": (l1_obj * exists[:, None]).sum() / num_exist,
        "loss_sub_giou": giou_sub.sum() / num_interactions,
        "loss_obj_giou": (giou_obj * exists).sum() / num_exist,
    }


@torch.no_grad()
def classification_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """100 - top-1 accuracy in percent, over (P, C) logits and (P,) targets; 100 when P = 0 (as DETR)."""
    if target.numel() == 0:
        return torch.tensor(100.0, device=logits.device)
    return 100.0 - logits.argmax(-1).eq(target).float().mean() * 100.0
