"""Loading the optional compiled extension ``rlipv2._C``.

The package never depends on the extension: every compiled op has a pure-PyTorch twin. When the
extension is missing or fails to load, :func:`load_extension` returns ``None`` and warns once.
"""
from __future__ import annotations

import functools
import logging
import os

logger = logging.getLogger(__name__)

_DISABLE_ENV = "RLIPV2_DISABLE_EXT"


@functools.cache
def load_extension():
    """Return the ``rlipv2._C`` module, or ``None`` when it is unavailable.

    Set ``RLIPV2_DISABLE_EXT=1`` to force the pure-PyTorch paths.
    """
    if os.environ.get(_DISABLE_ENV, "0") == "1":
        return None
    try:
        import torch  # noqa: F401  (loads libc10/libtorch, which _C links against)

        from rlipv2 import _C  # noqa: F401  (compiled by `pip install -e . --no-build-isolation`)
    except (ImportError, OSError) as e:
        import warnings

        warnings.warn(
            f"rlipv2._C could not be loaded ({type(e).__name__}: {e}); using the pure-PyTorch "
            "implementations of the compiled ops. Rebuild with `make setup` (CPU) or "
            "`make build-cuda` (GPU) for the fast kernels.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return _C


def extension_info() -> dict:
    """Describe the compiled extension: whether it is built and whether it has CUDA kernels."""
    ext = load_extension()
    if ext is None:
        return {"built": False, "cuda": False, "path": None}
    return {"built": True, "cuda": bool(ext.with_cuda()), "path": getattr(ext, "__file__", None)}
