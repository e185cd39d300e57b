"""Inference post-processing of RLIPv2's raw outputs into per-image results (interfaces contract 4).

Each post-processor maps the raw output dict (``pred_sub_logits`` / ``pred_obj_logits`` (N, Q, K+1),
``pred_verb_logits`` (N, Q, R), ``pred_sub_boxes`` / ``pred_obj_boxes`` (N, Q, 4) normalised cxcywh)
and the ORIGINAL image sizes to a list of N dicts:

    {
      "instances": Instances((orig_h, orig_w),
            pred_boxes=Boxes (2Q', 4)  xyxy in original-image pixels; subjects [0, Q'), objects [Q', 2Q'),
            pred_classes=int64 (2Q',)  index into the entity part of the label sequence
                                       (== contiguous object id with the fixed dataset vocabulary),
            scores=float (2Q',)),
      "pairs": {
            "subject": int64 (Q',)           pair q -> instance q,
            "object":  int64 (Q',)           pair q -> instance Q' + q,
            "relation_scores": float (Q', R),
      },
    }

Q' = Q except with the HOI zero-shot subject filter, which drops pairs. Boxes are not clipped (as
the official code). Normalised boxes are relative to the unpadded input image, so scaling them by the
original (h, w) undoes any resize.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from detectron2.structures import Boxes, Instances
from torch import nn

from .box_ops import cxcywh_to_xyxy

__all__ = ["HOIPostProcessor", "SGGPostProcessor"]


def _scaled_boxes(boxes: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    h, w = size
    scale = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
    return cxcywh_to_xyxy(boxes) * scale


def _entity_scores(logits: torch.Tensor):
    """Max softmax probability and its index, with the "no objects" column excluded."""
    return logits.softmax(-1)[..., :-1].max(-1)


def _result(size, sub_boxes, obj_boxes, sub_labels, obj_labels, sub_scores, obj_scores, rel_scores) -> Dict:
    q = sub_boxes.shape[0]
    inst = Instances(tuple(int(v) for v in size))
    inst.pred_boxes = Boxes(torch.cat([sub_boxes, obj_boxes]))
    inst.pred_classes = torch.cat([sub_labels, obj_labels]).to(torch.int64)
    inst.scores = torch.cat([sub_scores, obj_scores])
    ar = torch.arange(q, device=sub_boxes.device)
    return {"instances": inst, "pairs": {"subject": ar, "object": ar + q, "relation_scores": rel_scores}}


def _check_sizes(outputs, image_sizes):
    n = outputs["pred_obj_logits"].shape[0]
    if len(image_sizes) != n:
        raise ValueError(f"post-processing: {len(image_sizes)} image sizes for a batch of {n}")


class HOIPostProcessor(nn.Module):
    """HOI post-processing (HICO-DET, V-COCO): subjects are persons.

    - object score / label = max softmax over the entity columns, "no objects" excluded;
    - relation score = sigmoid(relation logit) * object score;
    - subject label = ``subject_category_id``; subject score 1.0 (not predicted);
    - ``zero_shot_subject_filter`` (NF zero-shot evaluation): pairs whose subject argmax ("no objects"
      excluded, needs ``pred_sub_logits``) is not ``subject_category_id`` are dropped;
    - ``correct_mat`` (R, K) optional: relation scores of invalid (relation, object) combinations are set
      to 0. Off by default: the official code applies it in the HICO-DET evaluator instead.

    Args:
        subject_category_id: entity index of "person" (0 in HICO-DET / V-COCO).
    """

    def __init__(
        self,
        subject_category_id: int = 0,
        zero_shot_subject_filter: bool = False,
        correct_mat: torch.Tensor | None = None,
    ):
        super().__init__()
        self.subject_category_id = subject_category_id
        self.zero_shot_subject_filter = zero_shot_subject_filter
        self.correct_mat = None if correct_mat is None else torch.as_tensor(correct_mat, dtype=torch.bool)

    @torch.no_grad()
    def forward(self, outputs: Dict[str, torch.Tensor], image_sizes: Sequence[Tuple[int, int]]) -> List[Dict]:
        """Args: outputs (raw dict), image_sizes: N original (height, width). Returns contract-4 dicts."""
        _check_sizes(outputs, image_sizes)
        obj_scores, obj_labels = _entity_scores(outputs["pred_obj_logits"])
        rel_scores = outputs["pred_verb_logits"].sigmoid() * obj_scores.unsqueeze(-1)
        if self.correct_mat is not None:
            valid = self.correct_mat.to(rel_scores.device)[:, obj_labels].permute(1, 2, 0)  # (N, Q, R)
            rel_scores = rel_scores * valid
        keep = None
        if self.zero_shot_subject_filter:
            if "pred_sub_logits" not in outputs:
                raise KeyError("HOIPostProcessor(zero_shot_subject_filter=True) needs outputs['pred_sub_logits']")
            keep = _entity_scores(outputs["pred_sub_logits"])[1] == self.subject_category_id
        results = []
        for i, size in enumerate(image_sizes):
            sb = _scaled_boxes(outputs["pred_sub_boxes"][i], size)
            ob = _scaled_boxes(outputs["pred_obj_boxes"][i], size)
            os_, ol, rs = obj_scores[i], obj_labels[i], rel_scores[i]
            if keep is not None:
                k = keep[i]
                sb, ob, os_, ol, rs = sb[k], ob[k], os_[k], ol[k], rs[k]
            sl = torch.full_like(ol, self.subject_category_id)
            results.append(_result(size, sb, ob, sl, ol, torch.ones_like(os_), os_, rs))
        return results


class SGGPostProcessor(nn.Module):
    """Scene-graph post-processing (Open Images): subjects come from the subject classifier.

    Subject and object score / label = max softmax over the entity columns ("no objects" excluded);
    relation score = sigmoid(relation logit) * object score * subject score.
    """

    @torch.no_grad()
    def forward(self, outputs: Dict[str, torch.Tensor], image_sizes: Sequence[Tuple[int, int]]) -> List[Dict]:
        """Args: outputs (raw dict), image_sizes: N original (height, width). Returns contract-4 dicts."""
        _check_sizes(outputs, image_sizes)
        obj_scores, obj_labels = _entity_scores(outputs["pred_obj_logits"])
        sub_scores, sub_labels = _entity_scores(outputs["pred_sub_logits"])
        rel_scores = outputs["pred_verb_logits"].sigmoid() * obj_scores.unsqueeze(-1) * sub_scores.unsqueeze(-1)
        return [
            _result(
                size,
                _scaled_boxes(outputs["pred_sub_boxes"][i], size),
                _scaled_boxes(outputs["pred_obj_boxes"][i], size),
                sub_labels[i],
                obj_labels[i],
                sub_scores[i],
                obj_scores[i],
                rel_scores[i],
            )
            for i, size in enumerate(image_sizes)
        ]
