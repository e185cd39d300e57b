"""Training hooks and event writers, assembled from Detectron2's where they fit.

:func:`build_train_hooks` returns, in execution order:

1. ``IterationTimer`` (step timing; ETA);
2. :class:`~rlipv2.engine.ema.EMAHook` when EMA is on (updated before anything saves or evaluates);
3. ``LRScheduler`` driving the ``lr_multiplier`` ParamScheduler;
4. ``PeriodicCheckpointer`` (main process only) with the atomic :class:`RLIPv2Checkpointer`;
5. ``EvalHook`` (every ``eval_period`` iterations and at the end);
6. ``PeriodicWriter`` (main process only) with :func:`build_writers`: console line with ETA and
   losses, ``metrics.json`` (one JSON line per logged iteration) and TensorBoard events.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable

from detectron2.engine import hooks
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, EventWriter, JSONWriter

__all__ = ["build_writers", "build_train_hooks"]

logger = logging.getLogger("rlipv2")


def build_writers(output_dir: str, max_iter: int, tensorboard: bool = True) -> list[EventWriter]:
    """Console printer (with ETA), ``<output_dir>/metrics.json`` and, if importable, TensorBoard."""
    os.makedirs(output_dir, exist_ok=True)
    writers: list[EventWriter] = [CommonMetricPrinter(max_iter), JSONWriter(os.path.join(output_dir, "metrics.json"))]
    if tensorboard:
        try:
            from detectron2.utils.events import TensorboardXWriter

            writers.append(TensorboardXWriter(output_dir))
        except ImportError as e:  # the tensorboard package is optional
            logger.warning(f"TensorBoard writer disabled ({e}); install `tensorboard` to enable it")
    return writers


def build_train_hooks(
    *,
    checkpointer,
    lr_multiplier,
    test_fn: Callable[[], dict],
    output_dir: str,
    max_iter: int,
    checkpoint_period: int,
    max_to_keep: int | None = None,
    eval_period: int = 0,
    log_period: int = 20,
    ema_hook: hooks.HookBase | None = None,
    tensorboard: bool = True,
) -> list[hooks.HookBase | None]:
    """The default hook list for :class:`~rlipv2.engine.trainer.RLIPv2Trainer` (see module docstring)."""
    main = comm.is_main_process()
    return [
        hooks.IterationTimer(),
        ema_hook,
        hooks.LRScheduler(scheduler=lr_multiplier),
        hooks.PeriodicCheckpointer(checkpointer, period=int(checkpoint_period), max_iter=max_iter,
                                   max_to_keep=max_to_keep)
        if main
        else None,
        hooks.EvalHook(int(eval_period), test_fn),
        hooks.PeriodicWriter(build_writers(output_dir, max_iter, tensorboard), period=int(log_period))
        if main
        else None,
    ]
