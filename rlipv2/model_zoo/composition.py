"""Helpers that compose one model config from others, so that a change is made in one place.

:func:`use_backbone` gives an RLIPv2 / R-Tagger model config the backbone of another model config,
together with every field that depends on the backbone. The experiment configs use it to turn their
ResNet-50 base into the Swin-T or Swin-L variant::

    from rlipv2.model_zoo import get_config, use_backbone

    use_backbone(model, get_config("common/models/rlipv2_parseda_swin_t.py").model)
"""
from __future__ import annotations

import copy

from omegaconf import OmegaConf

__all__ = ["BACKBONE_FIELDS", "use_backbone"]

#: The fields of an RLIPv2 model config that follow its backbone: the backbone node, the feature
#: maps it hands on, the input channels of the neck, and the position-embedding offset (-0.5 on the
#: official Swin path, 0 on the ResNet path).
BACKBONE_FIELDS = ("backbone", "in_features", "neck.in_channels", "position_embedding.offset")


def use_backbone(model, source) -> None:
    """Copy :data:`BACKBONE_FIELDS` from the model config ``source`` into ``model`` (in place).

    Args:
        model: the LazyConfig node to change (``L(RLIPv2)(...)`` or ``L(RTagger)(...)``).
        source: the model config whose backbone to use, e.g.
            ``get_config("common/models/rlipv2_parseda_swin_t.py").model``.
    """
    for field in BACKBONE_FIELDS:
        value = OmegaConf.select(source, field, default=None)
        if value is None:
            raise KeyError(f"use_backbone: the source model config has no '{field}'")
        OmegaConf.update(model, field, copy.deepcopy(value), merge=False)
