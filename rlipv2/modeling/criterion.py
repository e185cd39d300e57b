"""Set criteria of RLIPv2: the Hungarian-matched HOI/SGG criterion and the R-Tagger criterion.

Inputs:
    outputs: the model's raw dict (official keys):
        ``pred_sub_logits`` (N, Q, K+1), ``pred_obj_logits`` (N, Q, K+1) (last column "no objects"),
        ``pred_verb_logits`` (N, Q, R), ``pred_sub_boxes`` / ``pred_obj_boxes`` (N, Q, 4) normalised cxcywh,
        ``aux_outputs``: list of the same dicts for the earlier decoder layers,
        ``text_embeddings_prefusion`` (R, D): pooled relation-text embeddings before fusion (RPL only).
    targets: N dicts in the format of :mod:`rlipv2.modeling.targets` (``sub_labels``, ``obj_labels``,
        ``verb_labels`` (P, R), ``sub_boxes``, ``obj_boxes``).

Returns a dict of unweighted losses (``loss_*``; aux layer i gets the suffix ``_{i}``) plus logged,
gradient-free metrics (``obj_class_error``, ``sub_class_error``, ``obj_cardinality_error``).
:meth:`SetCriterionHOI.weighted_losses` multiplies the losses by their weights and drops the metrics,
which gives what a Detectron2 model returns in training. Formulas and flags: docs/losses.md.
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .losses import (
    classification_error,
    entity_cross_entropy,
    focal_relation_loss,
    pair_box_losses,
    quality_focal_loss,
    relation_text_similarity,
    relational_pseudo_labels,
    relational_quality_scores,
)
from .matcher import HungarianMatcherHOI, MatchIndices

__all__ = ["SetCriterionHOI", "TaggerCriterion", "DEFAULT_LOSS_WEIGHTS", "num_interactions_across_processes"]

# models/detr.py::build with the RLIPv2 scripts' coefficients.
DEFAULT_LOSS_WEIGHTS: Dict[str, float] = {
    "loss_obj_ce": 1.0,
    "loss_verb_ce": 1.0,
    "loss_sub_bbox": 2.5,
    "loss_obj_bbox": 2.5,
    "loss_sub_giou": 1.0,
    "loss_obj_giou": 1.0,
}
_AUX_SUFFIX = re.compile(r"^(.*)_(\d+)$")
_TARGET_KEYS = ("sub_labels", "obj_labels", "verb_labels", "sub_boxes", "obj_boxes")
_KNOWN_LOSSES = ("obj_labels", "verb_labels", "sub_obj_boxes", "obj_cardinality")


def num_interactions_across_processes(targets: Sequence[Dict[str, torch.Tensor]], device: torch.device) -> float:
    """Number of ground-truth pairs per process: all-reduced sum / world size, clamped to >= 1."""
    num = torch.as_tensor([float(sum(len(t["obj_labels"]) for t in targets))], device=device)
    world_size = 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        from detectron2.utils import comm

        world_size = comm.get_world_size()
        if world_size > 1:
            torch.distributed.all_reduce(num)
    return torch.clamp(num / world_size, min=1).item()


def _float_outputs(outputs: Dict) -> Dict:
    """One layer's outputs without ``aux_outputs``, floating tensors in float32 (AMP-safe losses)."""
    return {
        k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
        for k, v in outputs.items()
        if k != "aux_outputs"
    }


def _src_permutation_idx(indices: MatchIndices, device: torch.device):
    batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)]).to(device)
    src_idx = torch.cat([src for src, _ in indices]).to(device)
    return batch_idx, src_idx


def _gather_targets(targets, indices: MatchIndices, key: str) -> torch.Tensor:
    return torch.cat([t[key][j.to(t[key].device)] for t, (_, j) in zip(targets, indices)], dim=0)


class _WeightedLossMixin:
    weight_dict: Dict[str, float]

    def loss_weight(self, key: str) -> float | None:
        """Weight of a loss key; aux keys ``<name>_<i>`` share ``<name>``'s weight. None: not a weighted loss."""
        if key in self.weight_dict:
            return self.weight_dict[key]
        m = _AUX_SUFFIX.match(key)
        if m and m.group(1) in self.weight_dict:
            return self.weight_dict[m.group(1)]
        return None

    def weighted_losses(self, loss_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``{key: weight * loss}`` for every weighted loss (metrics and zero-weight entries dropped)."""
        out = {}
        for k, v in loss_dict.items():
            w = self.loss_weight(k)
            if w:
                out[k] = v * w
        return out


class SetCriterionHOI(_WeightedLossMixin, nn.Module):
    """Hungarian-matched criterion for HOI detection and SGG (RLIPv2's ``SetCriterionHOI``).

    Args:
        matcher: a :class:`HungarianMatcherHOI` (default: the official costs, with ``subject_class``).
        weight_dict: loss weights; missing keys take :data:`DEFAULT_LOSS_WEIGHTS`. Aux layers use the same.
        eos_coef: class weight of "no objects" in the entity cross-entropy (0.1).
        losses: which of ``obj_labels``, ``verb_labels``, ``sub_obj_boxes``, ``obj_cardinality`` to compute.
        subject_class: supervise the subject classifier (its cross-entropy is added into ``loss_obj_ce``).
        use_rql: Relational Quality Labels: relation targets scaled by the GIoU quality of the matched
            pair, trained with the quality focal loss.
        use_rpl: Relational Pseudo-Labels from relation-text similarity (needs ``use_rql`` as in the
            official code, and ``outputs['text_embeddings_prefusion']``).
        rpl_threshold: RPL keeps pseudo labels above it (0.3).
        rpl_target_grad: let gradients flow through the RPL targets into the text encoder, as the
            official code does (it does not detach them). Default False: targets are constants.
        qfl_beta: exponent of the quality focal loss (2).
        focal_eps: probability clamp of the focal losses (1e-6).
        aux_loss: also compute the losses of ``outputs['aux_outputs']`` (each layer re-matched).
    """

    def __init__(
        self,
        matcher: HungarianMatcherHOI | None = None,
        weight_dict: Dict[str, float] | None = None,
        eos_coef: float = 0.1,
        losses: Sequence[str] = _KNOWN_LOSSES,
        subject_class: bool = True,
        use_rql: bool = False,
        use_rpl: bool = False,
        rpl_threshold: float = 0.3,
        rpl_target_grad: bool = False,
        qfl_beta: float = 2.0,
        focal_eps: float = 1e-6,
        aux_loss: bool = True,
    ):
        super().__init__()
        unknown = set(losses) - set(_KNOWN_LOSSES)
        if unknown:
            raise ValueError(f"SetCriterionHOI: unknown losses {sorted(unknown)}; known: {_KNOWN_LOSSES}")
        if use_rpl and not use_rql:
            raise ValueError("SetCriterionHOI: use_rpl needs use_rql (RPL targets are scaled by the RQL quality)")
        self.matcher = matcher if matcher is not None else HungarianMatcherHOI(subject_class=subject_class)
        self.weight_dict = {**DEFAULT_LOSS_WEIGHTS, **(weight_dict or {})}
        self.eos_coef = eos_coef
        self.losses = tuple(losses)
        self.subject_class = subject_class
        self.use_rql = use_rql
        self.use_rpl = use_rpl
        self.rpl_threshold = rpl_threshold
        self.rpl_target_grad = rpl_target_grad
        self.qfl_beta = qfl_beta
        self.focal_eps = focal_eps
        self.aux_loss = aux_loss

    # ---- individual losses -------------------------------------------------------------------------

    def loss_obj_labels(self, outputs, targets, indices, num_interactions, log=True, **kwargs):
        """Entity cross-entropy over all queries; unmatched queries target "no objects" (weight eos_coef)."""
        logits_obj = outputs["pred_obj_logits"]
        idx = _src_permutation_idx(indices, logits_obj.device)
        tgt_obj = _gather_targets(targets, indices, "obj_labels").to(logits_obj.device)
        num_cls = logits_obj.shape[-1]
        classes = torch.full(logits_obj.shape[:2], num_cls - 1, dtype=torch.int64, device=logits_obj.device)
        classes[idx] = tgt_obj
        loss = entity_cross_entropy(logits_obj, classes, self.eos_coef)
        out = {}
        if log:
            out["obj_class_error"] = classification_error(logits_obj[idx], tgt_obj)
        if self.subject_class:
            logits_sub = outputs["pred_sub_logits"]
            tgt_sub = _gather_targets(targets, indices, "sub_labels").to(logits_sub.device)
            classes_sub = torch.full(
                logits_sub.shape[:2], logits_sub.shape[-1] - 1, dtype=torch.int64, device=logits_sub.device
            )
            classes_sub[idx] = tgt_sub
            loss = loss + entity_cross_entropy(logits_sub, classes_sub, self.eos_coef)
            if log:
                out["sub_class_error"] = classification_error(logits_sub[idx], tgt_sub)
        out["loss_obj_ce"] = loss
        return out

    def relation_targets(self, outputs, targets, indices, pseudo_labels=None) -> torch.Tensor:
        """(N, Q, R) relation targets: matched rows get y (focal), y * s (RQL) or (y + r) * s (RPL)."""
        logits = outputs["pred_verb_logits"]
        idx = _src_permutation_idx(indices, logits.device)
        tgt = _gather_targets(targets, indices, "verb_labels").to(logits)
        if self.use_rpl:
            tgt = tgt + torch.cat([r[j.to(r.device)] for r, (_, j) in zip(pseudo_labels, indices)]).to(logits)
        if self.use_rql:
            s = relational_quality_scores(
                outputs["pred_sub_boxes"][idx],
                outputs["pred_obj_boxes"][idx],
                _gather_targets(targets, indices, "sub_boxes").to(logits),
                _gather_targets(targets, indices, "obj_boxes").to(logits),
            )
            tgt = tgt * s[:, None]
        full = torch.zeros_like(logits)
        full[idx] = tgt
        return full

    def loss_verb_labels(self, outputs, targets, indices, num_interactions, pseudo_labels=None, **kwargs):
        """Focal relation loss (CornerNet) or, with RQL/RPL, quality focal loss, over all queries."""
        target = self.relation_targets(outputs, targets, indices, pseudo_labels)
        prob = outputs["pred_verb_logits"].sigmoid()
        if self.use_rql:
            loss = quality_focal_loss(prob, target, beta=self.qfl_beta, eps=self.focal_eps)
        else:
            loss = focal_relation_loss(prob, target, eps=self.focal_eps)
        return {"loss_verb_ce": loss}

    def loss_sub_obj_boxes(self, outputs, targets, indices, num_interactions, **kwargs):
        """L1 + GIoU of matched subject/object boxes (missing objects masked)."""
        idx = _src_permutation_idx(indices, outputs["pred_sub_boxes"].device)
        src_sub = outputs["pred_sub_boxes"][idx]
        src_obj = outputs["pred_obj_boxes"][idx]
        return pair_box_losses(
            src_sub,
            src_obj,
            _gather_targets(targets, indices, "sub_boxes").to(src_sub),
            _gather_targets(targets, indices, "obj_boxes").to(src_obj),
            num_interactions,
        )

    @torch.no_grad()
    def loss_obj_cardinality(self, outputs, targets, indices, num_interactions, **kwargs):
        """Logged only: mean |#queries whose argmax is not "no objects" - #pairs| per image."""
        logits = outputs["pred_obj_logits"]
        tgt_len = torch.as_tensor([len(t["obj_labels"]) for t in targets], device=logits.device, dtype=torch.float32)
        card = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1).float()
        return {"obj_cardinality_error": F.l1_loss(card, tgt_len)}

    # ---- driver ------------------------------------------------------------------------------------

    def pseudo_labels(self, outputs, targets) -> List[torch.Tensor] | None:
        """Per-image RPL pseudo labels (P_i, R), or None without RPL."""
        if not self.use_rpl:
            return None
        if "text_embeddings_prefusion" not in outputs:
            raise KeyError("SetCriterionHOI(use_rpl=True) needs outputs['text_embeddings_prefusion'] (R, D)")
        emb = outputs["text_embeddings_prefusion"].float()
        if emb.dim() == 3:  # (N, R, D): the sequence is shared by the batch; the official code uses image 0
            emb = emb[0]
        if not self.rpl_target_grad:
            emb = emb.detach()
        sim = relation_text_similarity(emb)
        return [
            relational_pseudo_labels(t["verb_labels"].to(sim), similarity=sim, threshold=self.rpl_threshold)
            for t in targets
        ]

    def _layer_losses(self, outputs, targets, indices, num_interactions, pseudo, log: bool):
        fns = {
            "obj_labels": self.loss_obj_labels,
            "verb_labels": self.loss_verb_labels,
            "sub_obj_boxes": self.loss_sub_obj_boxes,
            "obj_cardinality": self.loss_obj_cardinality,
        }
        out = {}
        for name in self.losses:
            out.update(fns[name](outputs, targets, indices, num_interactions, log=log, pseudo_labels=pseudo))
        return out

    def forward(self, outputs: Dict, targets: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """Match, then compute the losses of the last layer and (``aux_loss``) of every aux layer."""
        last = _float_outputs(outputs)
        device = outputs["pred_obj_logits"].device
        num_interactions = num_interactions_across_processes(targets, device)
        pseudo = self.pseudo_labels(outputs, targets)

        indices = self.matcher(last, targets)
        losses = self._layer_losses(last, targets, indices, num_interactions, pseudo, log=True)
        if self.aux_loss:
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                aux = _float_outputs(aux)
                aux_indices = self.matcher(aux, targets)
                l_dict = self._layer_losses(aux, targets, aux_indices, num_interactions, pseudo, log=False)
                losses.update({f"{k}_{i}": v for k, v in l_dict.items()})
        return losses


class TaggerCriterion(_WeightedLossMixin, nn.Module):
    """R-Tagger criterion (the official ``loss_verb_tagger``): no matching, query i is pair i.

    The tagger's queries are built from the ground-truth pairs, so the first P_i queries of image i
    are supervised by its P_i pairs (including negative pairs with all-zero relation rows): box L1 and
    GIoU (as :func:`pair_box_losses`), subject + object cross-entropy over those P_i queries only
    (``loss_obj_ce``, "no objects" weighted by ``eos_coef``), and the CornerNet focal relation loss
    over those P_i queries. Aux layers get the same losses with the suffix ``_{i}``.
    """

    def __init__(
        self,
        weight_dict: Dict[str, float] | None = None,
        eos_coef: float = 0.1,
        focal_eps: float = 1e-6,
        aux_loss: bool = True,
    ):
        super().__init__()
        self.weight_dict = {**DEFAULT_LOSS_WEIGHTS, **(weight_dict or {})}
        self.eos_coef = eos_coef
        self.focal_eps = focal_eps
        self.aux_loss = aux_loss

    def layer_losses(self, outputs, targets, num_interactions: float, log: bool = True) -> Dict[str, torch.Tensor]:
        """Losses of one decoder layer (keys without suffix)."""
        device = outputs["pred_verb_logits"].device
        num_q = outputs["pred_verb_logits"].shape[1]
        for i, t in enumerate(targets):
            if len(t["obj_labels"]) > num_q:
                raise ValueError(f"TaggerCriterion: image {i} has {len(t['obj_labels'])} pairs for {num_q} queries")
        aranges = [torch.arange(len(t["obj_labels"]), dtype=torch.int64) for t in targets]
        indices = [(a, a) for a in aranges]
        idx = _src_permutation_idx(indices, device)
        src_sub_box, src_obj_box = outputs["pred_sub_boxes"][idx], outputs["pred_obj_boxes"][idx]
        tgt = {k: torch.cat([t[k] for t in targets]).to(device) for k in _TARGET_KEYS}
        tgt_sub_box, tgt_obj_box = tgt["sub_boxes"].to(src_sub_box), tgt["obj_boxes"].to(src_obj_box)
        losses = pair_box_losses(src_sub_box, src_obj_box, tgt_sub_box, tgt_obj_box, num_interactions)
        logits_sub, logits_obj = outputs["pred_sub_logits"][idx], outputs["pred_obj_logits"][idx]
        if logits_obj.shape[0] > 0:
            ce_obj = entity_cross_entropy(logits_obj, tgt["obj_labels"], self.eos_coef)
            ce_sub = entity_cross_entropy(logits_sub, tgt["sub_labels"], self.eos_coef)
            losses["loss_obj_ce"] = ce_obj + ce_sub
        else:
            losses["loss_obj_ce"] = logits_obj.sum() + logits_sub.sum()
        if log:
            losses["obj_class_error"] = classification_error(logits_obj, tgt["obj_labels"])
            losses["sub_class_error"] = classification_error(logits_sub, tgt["sub_labels"])
        prob = outputs["pred_verb_logits"][idx].sigmoid()
        losses["loss_verb_ce"] = focal_relation_loss(prob, tgt["verb_labels"].to(prob), eps=self.focal_eps)
        return losses

    def forward(self, outputs: Dict, targets: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        last = _float_outputs(outputs)
        num_interactions = num_interactions_across_processes(targets, outputs["pred_verb_logits"].device)
        losses = self.layer_losses(last, targets, num_interactions, log=True)
        if self.aux_loss:
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                # the official code logs the class errors of aux layers too
                l_dict = self.layer_losses(_float_outputs(aux), targets, num_interactions, log=True)
                losses.update({f"{k}_{i}": v for k, v in l_dict.items()})
        return losses
