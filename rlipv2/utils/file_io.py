"""Atomic file writes: a reader never sees a half-written file.

Every writer here writes into a temporary file in the *same directory* as the target (so the final
rename never crosses a file system), flushes and fsyncs it, then ``os.replace``-s it over the
target. ``os.replace`` is atomic on POSIX and Windows: after a crash (or SIGKILL) at any moment the
target holds either its previous content or the complete new one, never a truncated mix. A
leftover ``.<name>.<pid>.*.tmp`` file is the only trace of an interrupted write;
:func:`remove_stale_temp_files` deletes those whose writing process is gone. The final file gets the
permissions of a plain ``open(path, "w")`` (0666 minus the umask), not the 0600 of a temporary file.
"""
from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save",
           "json_safe", "remove_stale_temp_files"]

_UMASK_LOCK = threading.Lock()


def _default_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` would give a new file."""
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


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
    fd, tmp = tempfile.mkstemp(dir=dirname, prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp")
    try:
        os.fchmod(fd, _default_file_mode())
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


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, ensure_ascii: bool = True,
                      nan: str = "error", default: Callable[[Any], Any] | None = None) -> None:
    """Serialise ``obj`` as standard JSON into ``path`` atomically (the text is built before the file opens).

    Args:
        nan: what to do with NaN / inf, which are not JSON: "error" (``ValueError`` naming the file; nothing
            is written) or "null" (written as null, e.g. a metric that is undefined).
        default: ``json.dumps`` hook for other types (e.g. numpy scalars).
    """
    if nan not in ("error", "null"):
        raise ValueError(f"nan must be 'error' or 'null', got {nan!r}")
    if nan == "null":
        obj = json_safe(json.loads(json.dumps(obj, default=default)) if default is not None else obj)
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False, ensure_ascii=ensure_ascii, default=default)
    except ValueError as e:
        raise ValueError(f"{os.fspath(path)}: not written: NaN or inf cannot be written as JSON ({e})") from None
    atomic_write_text(path, text + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike, *, save_fn: Callable[[Any, IO[bytes]], None] | None = None):
    """``torch.save(obj, path)`` made atomic."""
    if save_fn is None:
        import torch

        save_fn = torch.save
    with atomic_open(path, "wb") as f:
        save_fn(obj, f)


_TMP_RE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temp_files(directory: str | os.PathLike, pattern: str = ".*.tmp") -> list[str]:
    """Delete the temporary files of :func:`atomic_open` in ``directory`` whose writer process is gone.

    A killed run leaves ``.<name>.<pid>.<random>.tmp`` files; a resumed run calls this to clean them.
    Files of processes still alive (a concurrent writer) are kept. Returns the removed paths.
    """
    removed = []
    for path in glob.glob(os.path.join(os.fspath(directory), pattern)):
        m = _TMP_RE.match(os.path.basename(path))
        if m and int(m.group(1)) != os.getpid() and not _process_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
    return removed
