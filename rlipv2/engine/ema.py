"""Exponential moving average (EMA) of model weights.

After every optimiser step, each floating-point parameter and buffer ``w`` updates its shadow copy

    ema <- d * ema + (1 - d) * w,   d = decay * (1 - exp(-updates / warmup))   (warmup > 0)
                                    d = decay                                   (warmup = 0)

Non-floating buffers (e.g. BatchNorm's ``num_batches_tracked``) are copied. The shadow lives in
:class:`ModelEMA`, which has ``state_dict`` / ``load_state_dict`` so a checkpointer stores it next
to the raw weights, and :meth:`ModelEMA.swapped_into` temporarily loads it into the model (for
evaluation or for saving an EMA-only weight file).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from detectron2.engine import HookBase
from torch import nn

__all__ = ["ModelEMA", "EMAHook", "unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module inside a DDP / DataParallel wrapper (or the model itself)."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


class ModelEMA:
    """Shadow weights of a model.

    Args:
        model: the model whose ``state_dict`` is averaged (a DDP wrapper is unwrapped).
        decay: the EMA decay ``decay`` in (0, 1).
        warmup: if > 0, the effective decay ramps up as ``decay * (1 - exp(-updates / warmup))``.
        device: where to keep the shadow ("" = same device as the weights; "cpu" saves GPU memory).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, warmup: float = 0.0, device: str = ""):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = float(warmup)
        self.device = device or None
        self.updates = 0
        self.loaded = False  # True once load_state_dict filled the shadow from a checkpoint
        self.state: dict[str, torch.Tensor] = {}
        self.reset(model)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Restart the average from the current weights of ``model`` (e.g. after loading init weights)."""
        self.state = {
            k: v.detach().clone().to(self.device or v.device) for k, v in unwrap_model(model).state_dict().items()
        }
        self.updates = 0

    def current_decay(self) -> float:
        """The decay used by the next :meth:`update`."""
        if self.warmup > 0:
            return self.decay * (1.0 - math.exp(-(self.updates + 1) / self.warmup))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights of ``model`` into the shadow."""
        d = self.current_decay()
        model_state = unwrap_model(model).state_dict()
        float_ema, float_new = [], []
        for k, ema in self.state.items():
            new = model_state[k].detach()
            if ema.is_floating_point():
                float_ema.append(ema)
                float_new.append(new.to(ema.device, ema.dtype))
            else:
                ema.copy_(new)
        if float_ema:
            torch._foreach_mul_(float_ema, d)
            torch._foreach_add_(float_ema, float_new, alpha=1.0 - d)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"state": self.state, "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state_dict: dict) -> None:
        missing = set(self.state) - set(state_dict["state"])
        if missing:
            raise KeyError(f"EMA state is missing {len(missing)} keys, e.g. {sorted(missing)[:3]}")
        for k, v in state_dict["state"].items():
            if k in self.state:
                self.state[k].copy_(v)
        self.updates = int(state_dict.get("updates", 0))
        self.loaded = True

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Load the EMA weights into ``model`` inside the ``with`` block, restoring the raw ones after."""
        model = unwrap_model(model)
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state, strict=True)
        try:
            yield model
        finally:
            model.load_state_dict(backup, strict=True)


class EMAHook(HookBase):
    """Update a :class:`ModelEMA` after every training step."""

    def __init__(self, ema: ModelEMA, model: nn.Module):
        self.ema = ema
        self.model = model

    def after_step(self):
        self.ema.update(self.model)
