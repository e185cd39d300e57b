"""AdamW with RLIPv2's three learning-rate groups, chosen by parameter name.

| group         | parameters whose name ...                    | lr                |
|---------------|----------------------------------------------|-------------------|
| main          | contains neither "backbone" nor "text_encoder" | ``lr``          |
| backbone      | contains "backbone" (and not "text_encoder") | ``backbone_lr``   |
| text encoder  | contains "text_encoder"                      | ``text_encoder_lr`` |

As in the official ``main.py``, the fusion RoBERTa layers of the ALIF encoder (named
``...roberta_layers...``) are *not* part of the text encoder and train with the main lr. Every group
uses the same weight decay (1e-4 officially, norms and biases included). Frozen parameters
(``requires_grad=False``) are left out.

LazyConfig use (see ``configs/common/optim.py``)::

    optimizer = L(torch.optim.AdamW)(
        params=L(get_rlipv2_param_groups)(model=None, lr="${..lr}", backbone_lr=1e-5, text_encoder_lr=1e-5),
        lr=1e-4, weight_decay=1e-4)

The train script fills ``optimizer.params.model``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["get_rlipv2_param_groups", "build_rlipv2_optimizer", "param_group_of"]

BACKBONE_KEYS: tuple[str, ...] = ("backbone",)
TEXT_ENCODER_KEYS: tuple[str, ...] = ("text_encoder",)


def param_group_of(
    name: str,
    backbone_keys: Sequence[str] = BACKBONE_KEYS,
    text_encoder_keys: Sequence[str] = TEXT_ENCODER_KEYS,
) -> str:
    """Return "text_encoder", "backbone" or "main" for a parameter name (text encoder wins ties)."""
    if any(k in name for k in text_encoder_keys):
        return "text_encoder"
    if any(k in name for k in backbone_keys):
        return "backbone"
    return "main"


def get_rlipv2_param_groups(
    model: nn.Module,
    lr: float,
    backbone_lr: float,
    text_encoder_lr: float,
    weight_decay: float | None = None,
    backbone_keys: Sequence[str] = BACKBONE_KEYS,
    text_encoder_keys: Sequence[str] = TEXT_ENCODER_KEYS,
) -> list[dict]:
    """Split the trainable parameters of ``model`` into the main / backbone / text-encoder groups.

    Args:
        model: the model (a DDP wrapper is unwrapped, so names have no "module." prefix).
        lr, backbone_lr, text_encoder_lr: the learning rate of each group.
        weight_decay: if given, set on every group (otherwise the optimizer's default applies).
        backbone_keys, text_encoder_keys: name substrings that select the two special groups.

    Returns:
        A list of parameter-group dicts with keys ``params``, ``lr``, ``name`` (and ``weight_decay``);
        empty groups are dropped. Shared parameters appear once.
    """
    if model is None:
        raise ValueError("get_rlipv2_param_groups: `model` is None; set cfg.optimizer.params.model first")
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    lrs = {"main": lr, "backbone": backbone_lr, "text_encoder": text_encoder_lr}
    params: dict[str, list[nn.Parameter]] = {"main": [], "backbone": [], "text_encoder": []}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        params[param_group_of(name, backbone_keys, text_encoder_keys)].append(p)
    groups = []
    for key in ("main", "backbone", "text_encoder"):
        if not params[key]:
            continue
        g = {"params": params[key], "lr": float(lrs[key]), "name": key}
        if weight_decay is not None:
            g["weight_decay"] = float(weight_decay)
        groups.append(g)
    if not groups:
        raise ValueError("get_rlipv2_param_groups: the model has no trainable parameters")
    return groups


def build_rlipv2_optimizer(
    model: nn.Module,
    lr: float = 1e-4,
    backbone_lr: float = 1e-5,
    text_encoder_lr: float = 1e-5,
    weight_decay: float = 1e-4,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over :func:`get_rlipv2_param_groups` (official defaults: wd 1e-4, no lr warm-up)."""
    groups = get_rlipv2_param_groups(model, lr, backbone_lr, text_encoder_lr)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, betas=tuple(betas), eps=eps)
