"""Per-image pair targets for the matcher and the criteria, built from mapped inputs (contract 2).

Target format (one dict per image; P = number of distinct (subject, object) pairs, R = number of
relation labels in the batch's label sequence, K = number of object labels in it):

    {
      "sub_labels":  int64 (P,)     subject class, index into the entity part of the label sequence,
      "obj_labels":  int64 (P,)     object class; K ("no objects") for a missing object,
      "verb_labels": float32 (P, R) multi-hot relations of the pair (soft values are allowed),
      "sub_boxes":   float32 (P, 4) normalised (cx, cy, w, h) w.r.t. the (unpadded) input image,
      "obj_boxes":   float32 (P, 4) same; all zeros for a missing object (V-COCO),
      "pairs":       int64 (P, 2)   (subject, object) instance indices (-1 = missing object),
    }

Relations sharing a (subject, object) pair become one multi-hot row, in order of first appearance,
as the official HICO-DET / V-COCO / VG loaders do.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch

__all__ = [
    "build_pair_targets",
    "build_batch_pair_targets",
    "pair_targets_from_label_sequence",
    "FAITHFUL_HOI_SUBJECT_LABEL",
]

# Subject label the official HICO-DET / V-COCO loaders give every pair (unless the never-used
# --use_correct_subject_category_hico flag is passed): index 1, "bicycle", instead of 0, "person".
FAITHFUL_HOI_SUBJECT_LABEL = 1


def build_pair_targets(
    instances,
    relations: torch.Tensor,
    num_object_labels: int,
    num_relation_labels: int,
    object_labels: torch.Tensor | None = None,
    relation_labels: torch.Tensor | None = None,
    faithful_hoi_subject_label: bool = False,
    device: torch.device | None = None,
) -> Dict[str, torch.Tensor]:
    """Group one image's relations into pair targets (format in the module docstring).

    Args:
        instances: Detectron2 ``Instances`` of the augmented image with ``gt_boxes`` (Boxes, xyxy absolute)
            and ``gt_classes``; ``instances.image_size`` (H, W) normalises the boxes.
        relations: int64 (M, 3) rows (subject index, object index or -1, predicate id).
        num_object_labels: K, the number of object labels in the label sequence ("no objects" is index K).
        num_relation_labels: R, the number of relation labels in the label sequence.
        object_labels: optional int64 (num_instances,) label-sequence index of each instance; defaults to
            ``gt_classes`` (fixed vocabulary, where the sequence index equals the contiguous id).
        relation_labels: optional int64 (M,) label-sequence index of each relation; defaults to ``relations[:, 2]``.
        faithful_hoi_subject_label: give every pair subject label 1, as the official HICO-DET / V-COCO
            fine-tuning does (a bug; only for reproducing it). Default: the subject instance's class.
        device: device of the returned tensors (default: that of ``relations``).

    Returns:
        dict of tensors, see the module docstring.
    """
    relations = torch.as_tensor(relations, dtype=torch.int64).reshape(-1, 3)
    device = relations.device if device is None else device
    boxes = instances.gt_boxes.tensor.to(device=device, dtype=torch.float32)
    num_inst = boxes.shape[0]
    classes = instances.gt_classes if object_labels is None else object_labels
    classes = torch.as_tensor(classes, dtype=torch.int64, device=device).reshape(-1)
    if classes.shape[0] != num_inst:
        raise ValueError(f"build_pair_targets: {classes.shape[0]} object labels for {num_inst} instances")
    rel_ids = relations[:, 2] if relation_labels is None else torch.as_tensor(relation_labels, dtype=torch.int64)
    rel_ids = rel_ids.reshape(-1)
    if rel_ids.shape[0] != relations.shape[0]:
        raise ValueError(f"build_pair_targets: {rel_ids.shape[0]} relation labels for {relations.shape[0]} relations")

    h, w = instances.image_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=device)
    x1, y1, x2, y2 = (boxes / scale).unbind(-1)
    norm_boxes = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)

    pair_rows: Dict[tuple, int] = {}
    pairs: List[tuple] = []
    verb_rows: List[torch.Tensor] = []
    for (s, o, _), r in zip(relations.tolist(), rel_ids.tolist()):
        if not 0 <= s < num_inst or not -1 <= o < num_inst:
            raise ValueError(f"build_pair_targets: relation ({s}, {o}) indexes outside {num_inst} instances")
        if not 0 <= r < num_relation_labels:
            raise ValueError(f"build_pair_targets: relation label {r} outside [0, {num_relation_labels})")
        key = (s, o)
        if key not in pair_rows:
            pair_rows[key] = len(pairs)
            pairs.append(key)
            verb_rows.append(torch.zeros(num_relation_labels, dtype=torch.float32, device=device))
        verb_rows[pair_rows[key]][r] = 1.0

    if not pairs:
        return {
            "sub_labels": torch.zeros(0, dtype=torch.int64, device=device),
            "obj_labels": torch.zeros(0, dtype=torch.int64, device=device),
            "verb_labels": torch.zeros(0, num_relation_labels, dtype=torch.float32, device=device),
            "sub_boxes": torch.zeros(0, 4, dtype=torch.float32, device=device),
            "obj_boxes": torch.zeros(0, 4, dtype=torch.float32, device=device),
            "pairs": torch.zeros(0, 2, dtype=torch.int64, device=device),
        }
    pair_t = torch.tensor(pairs, dtype=torch.int64, device=device)
    sub_idx, obj_idx = pair_t[:, 0], pair_t[:, 1]
    missing = obj_idx < 0
    safe_obj = obj_idx.clamp(min=0)
    if faithful_hoi_subject_label:
        sub_labels = torch.full_like(sub_idx, FAITHFUL_HOI_SUBJECT_LABEL)
    else:
        sub_labels = classes[sub_idx]
    obj_labels = torch.where(missing, torch.full_like(obj_idx, num_object_labels), classes[safe_obj])
    obj_boxes = torch.where(missing[:, None], torch.zeros_like(norm_boxes[safe_obj]), norm_boxes[safe_obj])
    return {
        "sub_labels": sub_labels,
        "obj_labels": obj_labels,
        "verb_labels": torch.stack(verb_rows),
        "sub_boxes": norm_boxes[sub_idx],
        "obj_boxes": obj_boxes,
        "pairs": pair_t,
    }


def build_batch_pair_targets(
    batched_inputs: Sequence[dict],
    num_object_labels: int,
    num_relation_labels: int,
    object_labels: Sequence[torch.Tensor] | None = None,
    relation_labels: Sequence[torch.Tensor] | None = None,
    faithful_hoi_subject_label: bool = False,
    device: torch.device | None = None,
) -> List[Dict[str, torch.Tensor]]:
    """:func:`build_pair_targets` over a batch of mapped inputs (``instances`` and ``relations`` keys).

    ``object_labels`` / ``relation_labels`` are optional per-image re-indexings to the label sequence.
    """
    out = []
    for i, x in enumerate(batched_inputs):
        try:
            out.append(
                build_pair_targets(
                    x["instances"],
                    x["relations"],
                    num_object_labels,
                    num_relation_labels,
                    object_labels=None if object_labels is None else object_labels[i],
                    relation_labels=None if relation_labels is None else relation_labels[i],
                    faithful_hoi_subject_label=faithful_hoi_subject_label,
                    device=device,
                )
            )
        except (KeyError, ValueError) as e:
            raise ValueError(f"image {x.get('image_id', i)} ({x.get('file_name', '?')}): {e}") from e
    return out


def pair_targets_from_label_sequence(
    batched_inputs: Sequence[dict],
    label_sequence,
    faithful_hoi_subject_label: bool = False,
    device: torch.device | None = None,
) -> List[Dict[str, torch.Tensor]]:
    """Pair targets of a batch from its label sequence (contract 3, ``rlipv2.data.label_sequence``).

    Args:
        batched_inputs: the mapped inputs (contract 2), for their ``instances`` (boxes).
        label_sequence: a ``LabelSequence``: ``num_object_labels``, ``texts`` and ``targets``, one dict per
            image with ``labels`` (instance label indices into the sequence) and ``relations`` (M, 3) whose
            predicate column already indexes the relation labels.
        faithful_hoi_subject_label, device: as in :func:`build_pair_targets`.
    """
    num_obj = label_sequence.num_object_labels
    num_rel = len(label_sequence.texts) - num_obj - 1
    if len(label_sequence.targets) != len(batched_inputs):
        raise ValueError(
            f"pair_targets_from_label_sequence: {len(label_sequence.targets)} label-sequence targets "
            f"for {len(batched_inputs)} images"
        )
    per_image = [dict(x, relations=t["relations"]) for x, t in zip(batched_inputs, label_sequence.targets)]
    return build_batch_pair_targets(
        per_image,
        num_obj,
        num_rel,
        object_labels=[t["labels"] for t in label_sequence.targets],
        faithful_hoi_subject_label=faithful_hoi_subject_label,
        device=device,
    )
