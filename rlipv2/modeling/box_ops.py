"""Small box helpers on top of ``torchvision.ops`` used by the matcher, the losses and post-processing.

Boxes inside the model are normalised ``(cx, cy, w, h)`` in [0, 1]; an all-zero box marks a missing
object (V-COCO actions without an object).
"""
from __future__ import annotations

import torch
from torchvision.ops import box_convert, generalized_box_iou

__all__ = ["cxcywh_to_xyxy", "paired_generalized_box_iou", "missing_box_mask"]


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) ``(cx, cy, w, h)`` -> (..., 4) ``(x1, y1, x2, y2)``."""
    return box_convert(boxes, in_fmt="cxcywh", out_fmt="xyxy")


def paired_generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Element-wise GIoU of two aligned box sets, without building the (P, P) matrix.

    Args:
        boxes1, boxes2: (P, 4) ``xyxy`` boxes, row i of one paired with row i of the other.

    Returns:
        (P,) GIoU in [-1, 1]; equal to ``generalized_box_iou(boxes1, boxes2).diag()``.
    """
    if boxes1.shape != boxes2.shape:
        raise ValueError(f"paired_generalized_box_iou: shapes differ, {tuple(boxes1.shape)} vs {tuple(boxes2.shape)}")
    # torchvision's op broadcasts over leading dims: (P, 1, 4) x (P, 1, 4) -> (P, 1, 1).
    return generalized_box_iou(boxes1[:, None, :], boxes2[:, None, :]).reshape(-1)


def missing_box_mask(boxes: torch.Tensor) -> torch.Tensor:
    """(P, 4) -> (P,) bool, True where the box is all zeros (a missing object)."""
    return (boxes == 0).all(dim=-1)
