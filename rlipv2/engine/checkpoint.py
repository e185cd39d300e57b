"""Checkpointing that never leaves a truncated file and never runs code from a checkpoint.

:class:`RLIPv2Checkpointer` is Detectron2's :class:`DetectionCheckpointer` with three changes:

* **Atomic writes.** A checkpoint is written into a temporary file in the output directory, fsynced,
  then ``os.replace``-d over its final name; the ``last_checkpoint`` tag is replaced the same way
  and only after the checkpoint is complete. A crash or SIGKILL at any point leaves the previous
  checkpoint and tag intact and loadable.
* **Safe loading.** ``.pth`` files are read with ``torch.load(weights_only=True)``; the only Python
  class allowed in addition to tensors and containers is ``argparse.Namespace`` (the official
  RLIPv2 checkpoints pickle their command-line ``args``). ``.pkl`` files (Detectron2/Caffe2 model
  zoo) go through a restricted unpickler that admits numpy arrays only. A crafted pickle that
  would import or call anything else is refused with :class:`UnsafeCheckpointError`.
* **Official query truncation** (``truncate_queries=True``): when a checkpoint has more query rows
  than the model (official pre-training uses 200 queries, HICO-DET fine-tuning 128), the
  ``tgt_embed`` / ``verb_tgt_embed`` / ``refpoint_embed`` weights keep their first rows, as the
  official ``filter_ckpt_tgt_anchor`` does.
* **Frozen weights stored once** (``frozen_weights_once=True``, ``train.checkpointer.frozen_weights_once``):
  the parameters that do not train (``requires_grad=False``, e.g. a frozen pretrained text encoder)
  are written once into ``frozen_weights_<sha256 prefix>.pth`` next to the checkpoints, and each
  checkpoint stores only their names and that file name (``"frozen_weights"``), also for the EMA
  state. Loading a checkpoint reads the file back by name, so resuming, ``--eval-only`` and the
  predictor see complete weights. The file name is the hash of the frozen tensors: if they ever
  change, a new file is written and older checkpoints keep theirs.

Loading refuses (:class:`CheckpointMismatchError`) a checkpoint of which not a single weight matches
the model, e.g. an official checkpoint that was not converted: nothing would be initialised.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import pickle
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.file_io import PathManager

from rlipv2.schemas.checkpoint import check_checkpoint_file, check_last_checkpoint, check_resume_state
from rlipv2.schemas.core import SchemaError
from rlipv2.utils.file_io import atomic_open, atomic_write_text

__all__ = [
    "RLIPv2Checkpointer",
    "UnsafeCheckpointError",
    "CheckpointMismatchError",
    "safe_torch_load",
    "safe_pickle_load",
    "truncate_query_embeddings",
    "SAFE_GLOBALS",
    "QUERY_EMBED_SUFFIXES",
]

logger = logging.getLogger(__name__)

#: Python objects (besides tensors, numbers, strings and containers) that a checkpoint may contain.
#: ``argparse.Namespace`` holds the training arguments in the official RLIPv2 checkpoints.
SAFE_GLOBALS: tuple = (argparse.Namespace,)

#: State-dict key suffixes of the per-query embeddings that the official code truncates.
QUERY_EMBED_SUFFIXES: tuple[str, ...] = ("tgt_embed.weight", "verb_tgt_embed.weight", "refpoint_embed.weight")

# (module, name) pairs a legacy .pkl weight file may reference: numpy arrays and scalars only.
_SAFE_PICKLE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references Python objects outside the allow-list; it was not loaded."""


class CheckpointMismatchError(ValueError):
    """A strict load found missing, unexpected or wrongly shaped keys (e.g. a wrong architecture)."""


def _unsafe_message(path: str, detail: str) -> str:
    lines = [ln.strip() for ln in detail.strip().splitlines() if ln.strip()]
    # torch's message opens with generic advice; the informative line names the refused global.
    named = [ln for ln in lines if "global" in ln.lower() and ("unsupported" in ln.lower() or "not allowed" in ln)]
    detail = (named or lines or ["n/a"])[0].rstrip(".") + "."
    return (
        f"Refusing to load checkpoint '{path}': it contains Python objects outside the allow-list "
        f"(tensors, numbers, strings, containers, argparse.Namespace). Loading it could run arbitrary "
        f"code. Details: {detail} "
        "If the file comes from a source you trust, re-save its tensors with "
        "`torch.save({'model': state_dict}, path)`, or pass allow_unsafe_load=True to RLIPv2Checkpointer."
    )


def safe_torch_load(path_or_file: Any, *, extra_safe_globals: Sequence = (), name: str | None = None) -> Any:
    """``torch.load(..., weights_only=True, map_location="cpu")`` with :data:`SAFE_GLOBALS` allowed.

    A path is first checked by :func:`rlipv2.schemas.checkpoint.check_checkpoint_file` (empty, truncated,
    or not a checkpoint at all: one clear error naming the file).

    Raises:
        UnsafeCheckpointError: the file would need other globals (e.g. a crafted ``__reduce__``).
        SchemaError (a ValueError): the file is not a readable checkpoint.
    """
    name = name or str(path_or_file)
    if isinstance(path_or_file, (str, os.PathLike)):
        check_checkpoint_file(os.fspath(path_or_file))
    allowed = list(SAFE_GLOBALS) + list(extra_safe_globals)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path_or_file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not _names_a_global(str(e)):  # garbage, not a forbidden class: say so, not "could run code"
            raise SchemaError(f"checkpoint '{name}' is corrupt (unreadable pickle data: "
                              f"{_last_line(str(e))})") from None
        raise UnsafeCheckpointError(_unsafe_message(name, str(e))) from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - torch.load fails in many ways on damaged files; all are "corrupt"
        raise SchemaError(f"checkpoint '{name}' is truncated or corrupt ({type(e).__name__}: "
                          f"{_last_line(str(e))})") from None


def _names_a_global(message: str) -> bool:
    low = message.lower()
    return "global" in low and ("unsupported" in low or "not allowed" in low or "safe_globals" in low)


def _last_line(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no details"


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeCheckpointError(f"global '{module}.{name}' is not allowed")


def safe_pickle_load(f, *, name: str = "<file>") -> Any:
    """Unpickle a legacy ``.pkl`` weight file, allowing numpy arrays and plain containers only."""
    try:
        return _RestrictedUnpickler(f, encoding="latin1").load()
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(_unsafe_message(name, str(e))) from None


def truncate_query_embeddings(
    checkpoint_state: dict[str, torch.Tensor],
    model_state: dict[str, torch.Tensor],
    suffixes: Iterable[str] = QUERY_EMBED_SUFFIXES,
) -> list[tuple[str, int, int]]:
    """Keep the first rows of per-query embeddings that are longer in the checkpoint than in the model.

    ``checkpoint_state[k]`` of shape (N_ckpt, D) becomes (N_model, D) when ``k`` ends with one of
    ``suffixes``, the model has ``k`` with shape (N_model, D) and N_ckpt > N_model. Modified in place.

    Returns:
        (key, N_ckpt, N_model) for every truncated key.
    """
    suffixes = tuple(suffixes)
    done = []
    for k, v in list(checkpoint_state.items()):
        if not k.endswith(suffixes) or k not in model_state or not isinstance(v, torch.Tensor):
            continue
        target = model_state[k]
        if v.dim() >= 1 and v.shape[1:] == target.shape[1:] and v.shape[0] > target.shape[0]:
            checkpoint_state[k] = v[: target.shape[0]].clone()
            done.append((k, v.shape[0], target.shape[0]))
    return done


class RLIPv2Checkpointer(DetectionCheckpointer):
    """A :class:`DetectionCheckpointer` with atomic saves, safe loads and optional query truncation.

    Args:
        model, save_dir, save_to_disk, checkpointables: as in :class:`DetectionCheckpointer`.
        truncate_queries: truncate longer query embeddings in loaded checkpoints to the model's size.
        query_suffixes: state-dict key suffixes treated as per-query embeddings.
        allow_unsafe_load: load with full pickle (only for files you trust; never the default).
        extra_safe_globals: more classes to allow in ``torch.load(weights_only=True)``.
        strict: raise :class:`CheckpointMismatchError` unless the checkpoint's model weights match the
            model exactly (no missing, unexpected or wrongly shaped keys). Use it to evaluate or
            run a trained model; leave it off to initialise from partly matching weights.
        frozen_weights_once: save the parameters with ``requires_grad=False`` once per run in
            ``frozen_weights_<hash>.pth`` instead of in every checkpoint (see the module docstring).
    """

    def __init__(
        self,
        model,
        save_dir: str = "",
        *,
        save_to_disk: bool | None = None,
        truncate_queries: bool = False,
        query_suffixes: Sequence[str] = QUERY_EMBED_SUFFIXES,
        allow_unsafe_load: bool = False,
        extra_safe_globals: Sequence = (),
        strict: bool = False,
        frozen_weights_once: bool = False,
        **checkpointables,
    ):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.strict = strict
        self._loading: str | None = None
        self.truncate_queries = truncate_queries
        self.query_suffixes = tuple(query_suffixes)
        self.allow_unsafe_load = allow_unsafe_load
        self.extra_safe_globals = tuple(extra_safe_globals)
        self.frozen_weights_once = frozen_weights_once

    # ------------------------------------------------------------------ saving
    def save(self, name: str, **kwargs: Any) -> None:
        """Write ``<save_dir>/<name>.pth`` atomically, then atomically point ``last_checkpoint`` at it."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        if self.frozen_weights_once:
            self._move_frozen_weights_out(data)

        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        if os.path.basename(save_file) != basename:
            raise ValueError(f"Checkpoint name must be a plain file name, got {name!r}")
        self.logger.info(f"Saving checkpoint to {save_file}")
        local_dir = self._local_dir()
        if local_dir is None:  # a remote PathManager URL: no atomic rename available there
            with self.path_manager.open(save_file, "wb") as f:
                torch.save(data, f)
        else:
            with atomic_open(os.path.join(local_dir, basename), "wb") as f:
                torch.save(data, f)
        self.tag_last_checkpoint(basename)

    # --------------------------------------------------------- frozen weights
    def frozen_parameter_names(self) -> list[str]:
        """State-dict names of the model parameters that do not train (``requires_grad=False``)."""
        return sorted(n for n, p in self.model.named_parameters(remove_duplicate=False) if not p.requires_grad)

    @staticmethod
    def _digest(tensors: dict[str, torch.Tensor]) -> str:
        h = hashlib.sha256()
        for k in sorted(tensors):
            t = tensors[k].detach().cpu().contiguous()
            h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy())
        return h.hexdigest()

    def _move_frozen_weights_out(self, data: dict[str, Any]) -> None:
        """Replace the frozen tensors of ``data`` by a reference to ``frozen_weights_<hash>.pth`` (written once)."""
        names = set(self.frozen_parameter_names())
        frozen = {k: v for k, v in data["model"].items() if k in names}
        if not frozen:
            return
        basename = f"frozen_weights_{self._digest(frozen)[:16]}.pth"
        local_dir = self._local_dir()
        if local_dir is None:
            return  # remote storage: keep the checkpoint self-contained
        path = os.path.join(local_dir, basename)
        if not os.path.isfile(path):
            self.logger.info(f"Saving the {len(frozen)} frozen weights once to {path}")
            with atomic_open(path, "wb") as f:
                torch.save({"model": frozen}, f)
        data["model"] = {k: v for k, v in data["model"].items() if k not in frozen}
        data["frozen_weights"] = {"file": basename, "keys": sorted(frozen)}
        for key in self.checkpointables:  # e.g. the EMA shadow: a frozen weight's average is the weight
            state = data.get(key)
            shadow = state.get("state") if isinstance(state, dict) else None
            if isinstance(shadow, dict) and frozen.keys() <= shadow.keys():
                if all(torch.equal(shadow[k].cpu(), frozen[k].cpu()) for k in frozen):
                    state["state"] = {k: v for k, v in state["state"].items() if k not in frozen}
                    state["frozen_weights_removed"] = True

    def _restore_frozen_weights(self, checkpoint: dict[str, Any], filename: str) -> None:
        """Fill in the weights a checkpoint stores in its ``frozen_weights`` file (inverse of the above)."""
        ref = checkpoint.pop("frozen_weights", None)
        if ref is None:
            return
        path = os.path.join(os.path.dirname(filename), ref["file"])
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Checkpoint '{filename}' keeps its {len(ref['keys'])} frozen weights in '{ref['file']}', "
                f"which is missing from {os.path.dirname(filename) or '.'}: copy it next to the checkpoint"
            )
        frozen = self._torch_load(path).get("model", {})
        missing = [k for k in ref["keys"] if k not in frozen]
        if missing:
            raise ValueError(f"'{path}' lacks frozen weights of '{filename}', e.g. {missing[:3]}")
        checkpoint["model"] = {**{k: frozen[k] for k in ref["keys"]}, **checkpoint["model"]}
        for value in checkpoint.values():
            if isinstance(value, dict) and value.pop("frozen_weights_removed", False):
                value["state"] = {**{k: frozen[k].clone() for k in ref["keys"]}, **value["state"]}

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Atomically replace ``<save_dir>/last_checkpoint`` with the given file name."""
        local_dir = self._local_dir()
        if local_dir is None:
            return super().tag_last_checkpoint(last_filename_basename)
        atomic_write_text(os.path.join(local_dir, "last_checkpoint"), last_filename_basename)

    def _local_dir(self) -> str | None:
        if "://" in self.save_dir:
            return None
        os.makedirs(self.save_dir, exist_ok=True)
        return self.save_dir

    # ----------------------------------------------------------------- loading
    def load(self, path: str, *args, **kwargs):
        if path and "://" not in path:
            check_checkpoint_file(path)  # missing, empty, truncated: one line naming the file
        self._loading = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading = None

    def resume_or_load(self, path: str, *, resume: bool = True):
        """Resume from ``<save_dir>/last_checkpoint`` (``resume=True`` and a tag exists), else initialise
        the model from ``path``. A resume checkpoint must hold the trainer state
        (:func:`rlipv2.schemas.checkpoint.check_resume_state`); an empty or dangling tag is an error."""
        if resume and self.save_dir and "://" not in self.save_dir:
            last = check_last_checkpoint(self.save_dir)
            if last is not None:
                self._resuming = True
                try:
                    return self.load(last)
                finally:
                    self._resuming = False
        return super().resume_or_load(path, resume=resume)

    def _load_file(self, filename: str) -> dict[str, Any]:
        data = self._load_file_by_type(filename)
        if getattr(self, "_resuming", False):
            check_resume_state(data, filename)
        return data

    def _load_file_by_type(self, filename: str) -> dict[str, Any]:
        if filename.endswith(".pkl"):
            with PathManager.open(filename, "rb") as f:
                if self.allow_unsafe_load:
                    data = pickle.load(f, encoding="latin1")
                else:
                    data = safe_pickle_load(f, name=filename)
            if not isinstance(data, dict):
                raise ValueError(f"Checkpoint '{filename}' holds a {type(data).__name__}, expected a dict")
            if "model" in data and "__author__" in data:
                return data
            if "blobs" in data:
                data = data["blobs"]
            data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
            return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}
        if filename.endswith(".pyth"):
            loaded = self._torch_load(filename)
            if "model_state" not in loaded:
                raise ValueError(f"Cannot load .pyth file {filename}: pycls checkpoints must contain 'model_state'")
            state = {k: v for k, v in loaded["model_state"].items() if not k.endswith("num_batches_tracked")}
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        checkpoint = super()._load_file(filename)
        self._restore_frozen_weights(checkpoint, filename)
        return checkpoint

    def _torch_load(self, f: str) -> dict[str, Any]:
        local = PathManager.get_local_path(f)
        if self.allow_unsafe_load:
            loaded = torch.load(local, map_location="cpu", weights_only=False)
        else:
            loaded = safe_torch_load(local, extra_safe_globals=self.extra_safe_globals, name=f)
        if not isinstance(loaded, dict):
            raise SchemaError(f"checkpoint '{f}' holds a {type(loaded).__name__}, expected a dict")
        return loaded

    def _load_model(self, checkpoint: dict[str, Any]):
        state = checkpoint.get("model")
        if not isinstance(state, dict):
            raise ValueError(f"Checkpoint field 'model' must be a state dict, got {type(state).__name__}")
        # Official checkpoints (and DDP-saved ones) may carry a "module." prefix; strip it first.
        if state and all(k.startswith("module.") for k in state):
            checkpoint["model"] = state = {k[len("module."):]: v for k, v in state.items()}
        if self.truncate_queries:
            done = truncate_query_embeddings(state, self.model.state_dict(), self.query_suffixes)
            for k, n_old, n_new in done:
                self.logger.info(f"Query truncation: '{k}' keeps the first {n_new} of {n_old} rows")
        num_model_keys = len(self.model.state_dict())
        incompatible = super()._load_model(checkpoint)
        if self.strict:
            self._check_strict(incompatible)
        if state and incompatible is not None:
            self._check_anything_loaded(incompatible, len(state), num_model_keys)
        return incompatible

    def _check_anything_loaded(self, incompatible, num_checkpoint_keys: int, num_model_keys: int) -> None:
        loaded = num_model_keys - len(set(incompatible.missing_keys))
        self.logger.info(f"Checkpoint '{self._loading}' set {loaded} of the model's {num_model_keys} weights "
                         f"({100.0 * loaded / max(num_model_keys, 1):.1f}%)")
        if loaded <= 0 and num_model_keys:
            keys = sorted(incompatible.unexpected_keys)[:3]
            raise CheckpointMismatchError(
                f"Checkpoint '{self._loading}': none of its {num_checkpoint_keys} weights matches a weight of "
                f"{type(self.model).__name__} (its keys look like {keys}); an official RLIPv2 checkpoint must be "
                "converted first (tools/convert_official_checkpoint.py)"
            )

    def _check_strict(self, incompatible) -> None:
        from fvcore.common.checkpoint import _filter_reused_missing_keys

        missing = _filter_reused_missing_keys(self.model, list(incompatible.missing_keys))
        problems = []
        if missing:
            problems.append(f"{len(missing)} model keys missing from the checkpoint, e.g. {sorted(missing)[:5]}")
        if incompatible.unexpected_keys:
            keys = sorted(incompatible.unexpected_keys)
            problems.append(f"{len(keys)} checkpoint keys unknown to the model, e.g. {keys[:5]}")
        if incompatible.incorrect_shapes:
            k, s_ckpt, s_model = incompatible.incorrect_shapes[0]
            problems.append(f"{len(incompatible.incorrect_shapes)} keys with other shapes, e.g. '{k}': "
                            f"{tuple(s_ckpt)} in the checkpoint, {tuple(s_model)} in the model")
        if problems:
            raise CheckpointMismatchError(
                f"Checkpoint '{self._loading}' does not match {type(self.model).__name__} (wrong architecture or "
                f"config?): " + "; ".join(problems) + ". Official checkpoints must be converted first; "
                "pass train.truncate_queries=True for 200-query weights in a 128-query model."
            )
