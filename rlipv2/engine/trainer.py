"""The training step: forward, backward, gradient clipping, optimiser step, with optional AMP.

:class:`RLIPv2Trainer` is Detectron2's :class:`SimpleTrainer` (so every Detectron2 hook and writer
works with it) with what RLIPv2 needs in one ``run_step``:

* gradient clipping at ``clip_grad_max_norm`` (0.1 officially; the total norm before clipping is
  logged as ``grad_norm``);
* mixed precision through ``torch.amp.autocast(device_type=...)``, with ``bf16`` (no loss scaling)
  or ``fp16`` (with a ``torch.amp.GradScaler``, unscaled before clipping, its state checkpointed);
  it works on CPU (bf16) as well as on GPU and never asserts that CUDA exists.

The model follows Detectron2's contract: in training mode ``model(batched_inputs)`` returns a dict
of scalar losses.
"""
from __future__ import annotations

import logging
import time

import torch
from detectron2.engine import SimpleTrainer
from detectron2.utils.events import get_event_storage

__all__ = ["RLIPv2Trainer", "resolve_amp_dtype"]

logger = logging.getLogger(__name__)

_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_amp_dtype(precision: str | torch.dtype) -> torch.dtype:
    """Map "bf16" / "fp16" (or a torch dtype) to a torch dtype."""
    if isinstance(precision, torch.dtype):
        if precision not in (torch.bfloat16, torch.float16):
            raise ValueError(f"AMP precision must be bfloat16 or float16, got {precision}")
        return precision
    try:
        return _DTYPES[str(precision).lower()]
    except KeyError:
        raise ValueError(f"train.amp.precision must be one of {sorted(_DTYPES)}, got {precision!r}") from None


class RLIPv2Trainer(SimpleTrainer):
    """SimpleTrainer + gradient clipping + optional autocast / grad scaling.

    Args:
        model, data_loader, optimizer: as in :class:`SimpleTrainer`.
        clip_grad_max_norm: max total L2 norm of the gradients (``None`` or <= 0: no clipping).
        amp_enabled: run the forward pass under ``torch.amp.autocast``.
        amp_precision: "bf16" or "fp16". fp16 uses a ``GradScaler``; bf16 needs none.
        device_type: "cuda" or "cpu" (autocast's device type); taken from the model's first
            parameter when None.
        gather_metric_period, async_write_metrics: as in :class:`SimpleTrainer`.
    """

    def __init__(
        self,
        model,
        data_loader,
        optimizer,
        *,
        clip_grad_max_norm: float | None = 0.1,
        clip_grad_norm_type: float = 2.0,
        amp_enabled: bool = False,
        amp_precision: str | torch.dtype = "bf16",
        device_type: str | None = None,
        gather_metric_period: int = 1,
        async_write_metrics: bool = False,
        resume_fast_forward: bool = False,
    ):
        super().__init__(
            model,
            data_loader,
            optimizer,
            gather_metric_period=gather_metric_period,
            async_write_metrics=async_write_metrics,
        )
        self.clip_grad_max_norm = clip_grad_max_norm if clip_grad_max_norm and clip_grad_max_norm > 0 else None
        self.clip_grad_norm_type = float(clip_grad_norm_type)
        self.amp_enabled = bool(amp_enabled)
        self.amp_dtype = resolve_amp_dtype(amp_precision)
        if device_type is None:
            p = next(model.parameters(), None)
            device_type = p.device.type if p is not None else "cpu"
        self.device_type = device_type
        use_scaler = self.amp_enabled and self.amp_dtype == torch.float16
        if use_scaler and device_type == "cpu":
            raise ValueError("fp16 AMP is not supported on CPU; use train.amp.precision='bf16'")
        self.grad_scaler = torch.amp.GradScaler(device_type) if use_scaler else None
        self.resume_fast_forward = bool(resume_fast_forward)
        # RNG states to restore before the first resumed step (set by RNGStateHook.load_state_dict).
        self.pending_rng_state = None

    def train(self, start_iter: int, max_iter: int):
        """Fast-forward the data (if enabled) and restore RNG states (if any), then train."""
        if self.resume_fast_forward and start_iter > 0:
            t0 = time.perf_counter()
            for _ in range(start_iter):
                next(self._data_loader_iter)
            logger.info(f"Fast-forwarded the train loader by {start_iter} batches in {time.perf_counter() - t0:.1f}s")
        if self.pending_rng_state is not None:
            from .rng import set_rng_state

            set_rng_state(self.pending_rng_state)
            self.pending_rng_state = None
            logger.info("Restored the RNG states of the interrupted run")
        super().train(start_iter, max_iter)

    def _params_with_grad(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]

    def run_step(self):
        """One iteration: load a batch, forward under autocast, backward, clip, step."""
        assert self.model.training, "[RLIPv2Trainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        with torch.autocast(device_type=self.device_type, dtype=self.amp_dtype, enabled=self.amp_enabled):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                losses = loss_dict
                loss_dict = {"total_loss": loss_dict}
            else:
                losses = sum(loss_dict.values())

        self.optimizer.zero_grad(set_to_none=True)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses).backward()
        else:
            losses.backward()
        self.after_backward()

        if self.clip_grad_max_norm is not None:
            if self.grad_scaler is not None:
                self.grad_scaler.unscale_(self.optimizer)
            params = self._params_with_grad()
            if params:
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    params, self.clip_grad_max_norm, norm_type=self.clip_grad_norm_type
                )
                get_event_storage().put_scalar("grad_norm", float(grad_norm))

        if self.async_write_metrics:
            self.concurrent_executor.submit(self._write_metrics, loss_dict, data_time, iter=self.iter)
        else:
            self._write_metrics(loss_dict, data_time)

        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
            get_event_storage().put_scalar("grad_scale", self.grad_scaler.get_scale(), smoothing_hint=False)
        else:
            self.optimizer.step()

    def state_dict(self):
        ret = super().state_dict()
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
