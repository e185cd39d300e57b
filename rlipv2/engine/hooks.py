"""Training hooks and event writers, assembled from Detectron2's where they fit.

:func:`build_train_hooks` returns, in execution order:

1. ``IterationTimer`` (step timing; ETA);
2. :class:`~rlipv2.engine.ema.EMAHook` when EMA is on (updated before anything saves or evaluates);
3. ``LRScheduler`` driving the ``lr_multiplier`` ParamScheduler;
4. :class:`RNGStateHook` (every process): gathers each rank's RNG states at checkpoint iterations
   so that the checkpoint restores them on ``--resume``;
5. :class:`PeriodicCheckpointer` (main process only) with the atomic :class:`RLIPv2Checkpointer`;
   ``max_to_keep`` counts every periodic checkpoint of the output directory, including those of
   earlier (interrupted, resumed) processes of the run;
6. ``EvalHook`` (every ``eval_period`` iterations and at the end), run with the RNG states
   preserved so that evaluating does not change the training that follows;
7. ``PeriodicWriter`` (main process only) with :func:`build_writers`: console line with ETA and
   losses, ``metrics.json`` (one JSON line per logged iteration) and TensorBoard events.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable

from detectron2.engine import hooks
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, EventWriter, JSONWriter

from .rng import get_rng_state, preserved_rng_state

__all__ = ["build_writers", "build_train_hooks", "RNGStateHook", "PeriodicCheckpointer"]

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


class RNGStateHook(hooks.HookBase):
    """Record every rank's RNG states at checkpoint iterations; restore them on resume.

    Register it on *all* processes, before the ``PeriodicCheckpointer`` and with the same period:
    at iterations where a checkpoint is written (``(iter + 1) % period == 0`` and the last one) it
    all-gathers :func:`~rlipv2.engine.rng.get_rng_state` from every rank, and the checkpoint stores
    them through the trainer's ``state_dict`` (``trainer.hooks.RNGStateHook``). On resume,
    ``load_state_dict`` hands this rank's states to the trainer, which restores them just before
    the first resumed iteration.
    """

    def __init__(self, period: int):
        self.period = int(period)
        self._states: list | None = None

    def after_step(self):
        it = self.trainer.iter
        if (it + 1) % self.period == 0 or it >= self.trainer.max_iter - 1:
            self._states = comm.all_gather(get_rng_state())

    def state_dict(self):
        return {"per_rank": self._states} if self._states else {}

    def load_state_dict(self, state_dict):
        states = state_dict.get("per_rank") or []
        if len(states) != comm.get_world_size():
            logger.warning(
                f"The checkpoint holds RNG states for {len(states)} processes but this run has "
                f"{comm.get_world_size()}: random streams restart from the seed"
            )
            return
        self.trainer.pending_rng_state = states[comm.get_rank()]


class PeriodicCheckpointer(hooks.PeriodicCheckpointer):
    """Detectron2's ``PeriodicCheckpointer`` hook whose ``max_to_keep`` applies to the whole run.

    Detectron2 only deletes the checkpoints written by the current process, so each restart
    (``--resume``) leaves the previous process's ones behind for good. Here, after each periodic
    save, the ``<file_prefix>_NNNNNNN.pth`` files of the output directory are listed and all but the
    ``max_to_keep`` latest (by iteration, up to the current one) are deleted. ``<file_prefix>_final.pth``,
    the file ``last_checkpoint`` names and checkpoints of later iterations than the current one
    (left by another run in the same directory) are never deleted.
    """

    def __init__(self, checkpointer, period: int, max_iter: int | None = None, max_to_keep: int | None = None,
                 file_prefix: str = "model"):
        if max_to_keep is not None and max_to_keep <= 0:
            raise ValueError(f"train.checkpointer.max_to_keep must be a positive number or None, got {max_to_keep}")
        super().__init__(checkpointer, period, max_iter=max_iter, max_to_keep=None, file_prefix=file_prefix)
        self.keep = max_to_keep

    def step(self, iteration: int, **kwargs) -> None:
        super().step(iteration, **kwargs)
        if self.keep is not None and (int(iteration) + 1) % self.period == 0:
            self.prune(int(iteration))

    def prune(self, iteration: int) -> list[str]:
        """Delete the older periodic checkpoints of the save directory; return the deleted paths."""
        save_dir = self.checkpointer.save_dir
        pattern = re.compile(rf"^{re.escape(self.file_prefix)}_(\d{{7}})\.pth$")
        found = []
        for name in self.path_manager.ls(save_dir):
            m = pattern.match(os.path.basename(name))
            if m and int(m.group(1)) <= iteration:
                found.append((int(m.group(1)), os.path.basename(name)))
        tagged = None
        tag = os.path.join(save_dir, "last_checkpoint")
        if self.path_manager.exists(tag):
            with self.path_manager.open(tag) as f:
                tagged = f.read().strip()
        deleted = []
        for _, name in sorted(found)[: max(0, len(found) - self.keep)]:
            if name == tagged:
                continue
            path = os.path.join(save_dir, name)
            self.path_manager.rm(path)
            deleted.append(path)
        if deleted:
            logger.info(f"max_to_keep={self.keep}: deleted {', '.join(os.path.basename(p) for p in deleted)}")
        return deleted


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

    def _test_preserving_rng():
        with preserved_rng_state():
            return test_fn()

    return [
        hooks.IterationTimer(),
        ema_hook,
        hooks.LRScheduler(scheduler=lr_multiplier),
        RNGStateHook(int(checkpoint_period)),
        PeriodicCheckpointer(checkpointer, period=int(checkpoint_period), max_iter=max_iter, max_to_keep=max_to_keep)
        if main
        else None,
        hooks.EvalHook(int(eval_period), _test_preserving_rng),
        hooks.PeriodicWriter(build_writers(output_dir, max_iter, tensorboard), period=int(log_period))
        if main
        else None,
    ]
