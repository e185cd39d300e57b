"""Capturing and restoring every random-number generator a training process uses.

The state is made of plain types and tensors only, so it can live in a checkpoint that is loaded
with ``torch.load(weights_only=True)``: python's ``random`` (tuples of ints), numpy's global
``RandomState`` (its key array stored as an int64 tensor), torch's CPU generator and, when CUDA is
initialised, every CUDA device's generator.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["get_rng_state", "set_rng_state", "preserved_rng_state"]


def get_rng_state() -> dict[str, Any]:
    """Snapshot of the python, numpy, torch CPU and (if initialised) CUDA generators."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`get_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block (e.g. an evaluation) without changing any generator's state for what follows."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
