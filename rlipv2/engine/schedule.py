"""The official RLIPv2 step schedule, expressed in iterations.

The official code trains for ``epochs`` epochs and sets, at every iteration, the lr of every group
to ``base_lr * 0.1 ** (epoch // lr_drop)`` (no warm-up). Detectron2 counts iterations, so:

* one epoch = ``iters_per_epoch = max(1, dataset_size // total_batch_size)`` iterations (the
  official loader drops the last incomplete batch);
* ``max_iter = epochs * iters_per_epoch``;
* at iteration ``it`` the (fractional) epoch is ``it * epochs // max_iter``, so the lr multiplier is
  ``gamma ** ((it * epochs // max_iter) // lr_drop)``; with the official 20 epochs / drop 15 it
  falls to 0.1 at iteration ``15 * iters_per_epoch``.

Defining the epoch through ``max_iter`` keeps the shape of the schedule (drop at 15/20 = 75 %) when
a user overrides ``train.max_iter`` alone.

The OmegaConf resolvers ``rlipv2.iters_per_epoch`` and ``rlipv2.max_iter`` (registered when this
module is imported) let ``configs/common/train.py`` derive ``train.max_iter`` by interpolation; they
give ``None`` while ``train.dataset_size`` is ``None``.
"""
from __future__ import annotations

import math

from fvcore.common.param_scheduler import ParamScheduler
from omegaconf import OmegaConf

__all__ = [
    "EpochStepParamScheduler",
    "compute_iters_per_epoch",
    "compute_max_iter",
    "lr_drop_iterations",
]


def compute_iters_per_epoch(dataset_size: int, total_batch_size: int) -> int:
    """Iterations in one epoch: ``max(1, dataset_size // total_batch_size)`` (last partial batch dropped)."""
    if dataset_size is None:
        raise ValueError(
            "train.dataset_size is not set: give the number of training images per epoch "
            "(tools/lazyconfig_train_net.py fills it from cfg.dataloader.train.dataset when it is None)"
        )
    dataset_size, total_batch_size = int(dataset_size), int(total_batch_size)
    if dataset_size <= 0 or total_batch_size <= 0:
        raise ValueError(f"dataset_size and total_batch_size must be > 0, got {dataset_size}, {total_batch_size}")
    return max(1, dataset_size // total_batch_size)


def compute_max_iter(epochs: int, dataset_size: int, total_batch_size: int) -> int:
    """``epochs * compute_iters_per_epoch(dataset_size, total_batch_size)``."""
    if int(epochs) <= 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")
    return int(epochs) * compute_iters_per_epoch(dataset_size, total_batch_size)


def lr_drop_iterations(max_iter: int, epochs: int, lr_drop: int) -> list[int]:
    """Iterations (0-based) at which the step schedule multiplies the lr by ``gamma`` again.

    For ``max_iter=20*ipe, epochs=20, lr_drop=15`` this is ``[15*ipe]``.
    """
    max_iter, epochs, lr_drop = int(max_iter), int(epochs), int(lr_drop)
    out = []
    k = 1
    while k * lr_drop < epochs:
        # smallest it with it * epochs // max_iter >= k * lr_drop
        out.append(math.ceil(k * lr_drop * max_iter / epochs))
        k += 1
    return [i for i in out if i < max_iter]


class EpochStepParamScheduler(ParamScheduler):
    """lr multiplier ``gamma ** (epoch // lr_drop)`` with ``epoch = iteration * epochs // max_iter``.

    Use it as ``lr_multiplier`` (Detectron2's ``LRScheduler`` hook wraps it in an ``LRMultiplier``
    that scales the lr of *every* parameter group, so the three group lrs keep their ratios).

    Args:
        max_iter: total training iterations (``train.max_iter``).
        epochs: number of epochs ``max_iter`` stands for.
        lr_drop: drop period in epochs (official ``--lr_drop``).
        gamma: factor per drop (0.1 officially).
    """

    def __init__(self, max_iter: int, epochs: int, lr_drop: int, gamma: float = 0.1):
        self.max_iter, self.epochs, self.lr_drop = int(max_iter), int(epochs), int(lr_drop)
        if self.max_iter <= 0 or self.epochs <= 0 or self.lr_drop <= 0:
            raise ValueError(f"max_iter, epochs and lr_drop must be > 0, got {max_iter}, {epochs}, {lr_drop}")
        self.gamma = float(gamma)

    def iteration_multiplier(self, iteration: int) -> float:
        """The multiplier at a 0-based training iteration."""
        epoch = int(iteration) * self.epochs // self.max_iter
        return self.gamma ** (epoch // self.lr_drop)

    def __call__(self, where: float) -> float:
        # LRMultiplier calls with where = iteration / max_iter; round back to the integer iteration.
        return self.iteration_multiplier(int(math.floor(where * self.max_iter + 1e-6)))


def _iters_per_epoch_or_none(dataset_size, total_batch_size):
    return None if dataset_size is None else compute_iters_per_epoch(dataset_size, total_batch_size)


def _max_iter_or_none(epochs, dataset_size, total_batch_size):
    return None if dataset_size is None else compute_max_iter(epochs, dataset_size, total_batch_size)


def _register_resolvers() -> None:
    # The resolvers give None while train.dataset_size is unknown (Detectron2 resolves every value
    # when it saves a config, also under --eval-only); the train script fills dataset_size first.
    for name, fn in (
        ("rlipv2.iters_per_epoch", _iters_per_epoch_or_none),
        ("rlipv2.max_iter", _max_iter_or_none),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


_register_resolvers()
