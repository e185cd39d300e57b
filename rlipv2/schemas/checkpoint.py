"""Checkpoint files (``.pth``): what a file must be before it is unpickled, and what it must hold to
initialise, evaluate or resume a run.

* The file: not empty; a PyTorch zip archive with its central directory (a truncated download has none)
  or a legacy pickle; anything else (random bytes, a text file) is "not a PyTorch checkpoint", never
  "could run arbitrary code" (that message is kept for pickles that reference forbidden globals).
* Weights (``train.init_checkpoint``, the converter, the predictor): a dict whose ``model`` (or the dict
  itself) maps parameter names to tensors.
* Resume (``--resume``): also a ``trainer`` dict with an integer ``iteration`` in [0, max_iter) and the
  ``optimizer`` state. A model-only file (e.g. ``model_final_ema.pth`` or a converted official checkpoint)
  cannot resume a run: it initialises one (``train.init_checkpoint``).
"""
from __future__ import annotations

import os
import zipfile
from typing import Any

from .core import SchemaError

__all__ = ["check_checkpoint_file", "check_weights", "check_resume_state", "check_resume_iteration",
           "check_last_checkpoint"]

_LEGACY_PICKLE = b"\x80"  # pickle protocol 2+ opcode; torch's legacy format starts with a pickled magic number


def check_checkpoint_file(path: str) -> None:
    """Refuse a path that cannot be a readable PyTorch checkpoint, with the reason and the path."""
    if os.path.isdir(path):
        raise SchemaError(f"checkpoint '{path}' is a directory, not a file")
    if not os.path.isfile(path):
        raise SchemaError(f"checkpoint '{path}' does not exist")
    size = os.path.getsize(path)
    if size == 0:
        raise SchemaError(f"checkpoint '{path}' is empty (0 bytes): an interrupted copy or download?")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            raise SchemaError(f"checkpoint '{path}' is truncated or corrupt ({size:,} bytes; its zip directory "
                              "is missing): copy or download it again")
        return
    if head.startswith(_LEGACY_PICKLE):
        return
    raise SchemaError(f"checkpoint '{path}' is not a PyTorch checkpoint (neither a torch.save zip archive nor a "
                      f"pickle; it starts with {head!r})")


def _is_tensor(v: Any) -> bool:
    return type(v).__name__ in ("Tensor", "Parameter") or hasattr(v, "shape") and hasattr(v, "dtype")


def check_weights(checkpoint: Any, path: str) -> dict:
    """The state dict of a weights checkpoint (``checkpoint["model"]`` or the checkpoint itself)."""
    if not isinstance(checkpoint, dict):
        raise SchemaError(f"checkpoint '{path}' holds a {type(checkpoint).__name__}, expected a dict")
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, dict) or not state:
        raise SchemaError(f"checkpoint '{path}': field 'model' must be a non-empty state dict, "
                          f"got {type(state).__name__}")
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not _is_tensor(v)), None)
    if bad is not None:
        raise SchemaError(f"checkpoint '{path}': field 'model' entry {bad!r} is not a tensor "
                          f"({type(state[bad]).__name__})")
    return state


def check_resume_state(checkpoint: Any, path: str) -> None:
    """A checkpoint that ``--resume`` can continue from (see the module docstring)."""
    if not isinstance(checkpoint, dict):
        raise SchemaError(f"cannot resume from '{path}': it holds a {type(checkpoint).__name__}, expected a dict")
    trainer = checkpoint.get("trainer")
    if trainer is None:
        raise SchemaError(
            f"cannot resume from '{path}': it holds model weights only (no 'trainer' state with the iteration "
            f"and the optimizer). Start a new run from these weights with train.init_checkpoint={path}")
    if not isinstance(trainer, dict):
        raise SchemaError(f"cannot resume from '{path}': field 'trainer' must be a dict, got {type(trainer).__name__}")
    it = trainer.get("iteration")
    if isinstance(it, bool) or not isinstance(it, int):
        raise SchemaError(f"cannot resume from '{path}': field 'trainer.iteration' must be an integer, got {it!r}")
    if it < 0:
        raise SchemaError(f"cannot resume from '{path}': field 'trainer.iteration' is negative ({it})")
    if not isinstance(trainer.get("optimizer"), dict):
        raise SchemaError(f"cannot resume from '{path}': field 'trainer.optimizer' (the optimizer state) is missing")


def check_resume_iteration(iteration: int, max_iter: int, path: str) -> None:
    """The stored iteration must lie in [0, max_iter): it is the last finished one."""
    if not 0 <= iteration < max_iter:
        raise SchemaError(
            f"cannot resume from '{path}': its trainer.iteration {iteration} is outside [0, train.max_iter = "
            f"{max_iter}); the run it comes from is finished or longer (raise train.max_iter, or start a new run "
            f"with train.init_checkpoint)")


def check_last_checkpoint(save_dir: str) -> str | None:
    """The checkpoint named by ``<save_dir>/last_checkpoint`` (None when there is no tag file).

    Refuses an empty tag, or a tag naming a file that is not there, with both paths named.
    """
    tag = os.path.join(save_dir, "last_checkpoint")
    if not os.path.isfile(tag):
        return None
    with open(tag, encoding="utf-8") as f:
        name = f.read().strip()
    if not name:
        raise SchemaError(f"cannot resume: '{tag}' is empty; write the name of a checkpoint of {save_dir} into it "
                          "(e.g. model_0004999.pth), or delete it to start from scratch")
    path = name if os.path.isabs(name) else os.path.join(save_dir, name)
    if not os.path.isfile(path):
        raise SchemaError(f"cannot resume: '{tag}' names '{name}', which is not a file in {save_dir}")
    return path
