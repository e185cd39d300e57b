"""Atomic file writes: a reader never sees a half-written file.

Every writer here writes into a temporary file in the *same directory* as the target (so the final
rename never crosses a file system), flushes and fsyncs it, then ``os.replace``-s it over the
target. ``os.replace`` is atomic on POSIX and Windows: after a crash (or SIGKILL) at any moment the
target holds either its previous content or the complete new one, never a truncated mix. A
leftover ``.<name>.*.tmp`` file is the only trace of an interrupted write.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save"]


def _fsync_dir(dirname: str) -> None:
    """Persist a rename in ``dirname`` (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing; on clean exit it replaces ``path``.

    If the ``with`` body raises, the temporary file is removed and ``path`` is left untouched.

    Args:
        path: the final file.
        mode: "wb" or "w" (text, UTF-8).
        fsync: fsync the file and its directory before returning (durable across power loss).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports modes 'wb' and 'w', got {mode!r}")
    path = os.fspath(path)
    dirname = os.path.dirname(os.path.abspath(path))
    os.makedirs(dirname, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dirname, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        kwargs = {"encoding": "utf-8"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(dirname)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN / inf floats replaced by None (recursively), so that it serialises as standard JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON into ``path`` atomically (the JSON is built before the file opens)."""
    text = json.dumps(obj, indent=indent)
    atomic_write_text(path, text + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike, *, save_fn: Callable[[Any, IO[bytes]], None] | None = None):
    """``torch.save(obj, path)`` made atomic."""
    if save_fn is None:
        import torch

        save_fn = torch.save
    with atomic_open(path, "wb") as f:
        save_fn(obj, f)
