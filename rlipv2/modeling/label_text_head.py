"""Classification by similarity with the label texts (official ``RLIP_ParSeDA`` "version 5" head).

For decoder layer l with language state ``T_l`` (N, L, C) (one row per label text):

    T'     = projection_text( normalize(T_l) / 2 )
    obj    = (h_obj + bias_obj_a) . T'_obj^T + b        (objects + "no objects": softmax downstream)
    sub    = (h_sub + bias_obj_a) . T'_obj^T + b        (only with ``subject_class``)
    rel    = (h_rel + bias_pred_a) . T'_rel^T + b       (relations: sigmoid downstream)

with learnable bias vectors initialised to 0, b = -log((1 - 0.01) / 0.01) ~ -4.595 a constant, and no
temperature. ``T'_obj`` is the first ``num_entity_labels`` rows (objects + "no objects").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LabelTextHead"]


class LabelTextHead(nn.Module):
    """Scores query states against label-text states. Parameters: ``projection_text``, ``bias_obj_a``,
    ``bias_pred_a`` (official names)."""

    def __init__(self, hidden_dim: int = 256, prior_prob: float = 0.01, subject_class: bool = True):
        super().__init__()
        self.projection_text = nn.Linear(hidden_dim, hidden_dim)
        self.bias_obj_a = nn.Parameter(torch.zeros(hidden_dim))
        self.bias_pred_a = nn.Parameter(torch.zeros(hidden_dim))
        self.bias_c = -math.log((1 - prior_prob) / prior_prob)
        self.subject_class = subject_class

    def forward(self, hs_sub, hs_obj, hs_rel, text_state, num_entity_labels: int):
        """
        Args:
            hs_sub, hs_obj, hs_rel: (N, Q, C) query states of one decoder layer.
            text_state: (N, L, C) language state of the same layer.
            num_entity_labels: number of object labels including "no objects".
        Returns:
            (sub_logits (N, Q, E) or None, obj_logits (N, Q, E), rel_logits (N, Q, L - E)).
        """
        text = self.projection_text(F.normalize(text_state, p=2, dim=-1) / 2.0)
        obj_text, rel_text = text[:, :num_entity_labels], text[:, num_entity_labels:]
        obj = torch.einsum("bqd,bld->bql", hs_obj + self.bias_obj_a, obj_text) + self.bias_c
        rel = torch.einsum("bqd,bld->bql", hs_rel + self.bias_pred_a, rel_text) + self.bias_c
        sub = None
        if self.subject_class:
            sub = torch.einsum("bqd,bld->bql", hs_sub + self.bias_obj_a, obj_text) + self.bias_c
        return sub, obj, rel
