"""Command-line entry points: bad input ends in one clear line on stderr, not a traceback.

* :func:`run_cli` runs a ``main(argv)`` and turns an input error into ``prog: error: ...`` and exit status 2.
* The argparse types below validate numeric options when the command line is parsed, so that
  ``--nms-thresh nan``, ``--top-k -1`` or ``--shard-size 0`` stop at once with argparse's usage line and
  exit status 2, instead of silently changing a result or failing later. Every numeric option of the
  CLIs uses one of them.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import pickle
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["INPUT_ERRORS", "run_cli", "input_from", "finite_float", "float_in", "unit_interval", "nonnegative_float",
           "positive_float", "int_at_least", "positive_int", "nonnegative_int", "json_list_or_file", "keyword_or"]

#: Errors that mean "the input is bad" (a file, a field, a shape); anything else is a bug and keeps its traceback.
#: (``pickle.UnpicklingError`` covers checkpoints refused as unsafe: ``UnsafeCheckpointError``.)
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError, EOFError, pickle.UnpicklingError)


def run_cli(main: Callable[[Sequence[str]], Any], prog: str, argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; on an input error print ``prog: error: <message>`` and return 2.

    Otherwise return ``main``'s result when it is an int (an exit status), else 0. Set
    ``RLIPV2_TRACEBACK=1`` to get the full traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rc = main(argv)
    except INPUT_ERRORS as e:
        if os.environ.get("RLIPV2_TRACEBACK", "0") not in ("", "0"):
            raise
        logging.getLogger(__name__).debug("input error", exc_info=True)
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{prog}: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return 2
    return rc if isinstance(rc, int) and not isinstance(rc, bool) else 0


@contextlib.contextmanager
def input_from(flag: str, expected: str) -> Iterator[None]:
    """Name the command-line option an input error comes from, and the format it expects.

    ``with input_from("--gt", "test_hico.json (community HICO-DET format)"): load(...)`` turns
    ``ValueError: x.json record 3: ...`` into ``ValueError: --gt x.json record 3: ...; expected
    test_hico.json (...)``, keeping the exception type (so :func:`run_cli` still exits with status 2).
    Messages that already start with an option (``--...``) get only the expected format appended.
    """
    try:
        yield
    except INPUT_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        text = str(msg) if str(msg).startswith("--") else f"{flag}: {msg}"
        text += f" (expected: {expected})"
        try:
            err = type(e)(text)
        except Exception:  # an exception type with another signature: keep the class family
            err = ValueError(text)
        raise err from e


# ------------------------------------------------------------------------------ argparse types
def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None


def finite_float(text: str) -> float:
    """A finite number (NaN and inf are refused)."""
    v = _number(text, float)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def float_in(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    """A finite number in [lo, hi] (``lo_open`` / ``hi_open`` exclude an end)."""
    def parse(text: str) -> float:
        v = finite_float(text)
        if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
            raise argparse.ArgumentTypeError(
                f"{text!r} is outside {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}")
        return v

    parse.__name__ = f"number in [{lo:g}, {hi:g}]"
    return parse


#: A finite number in [0, 1] (thresholds on scores, IoUs and probabilities).
unit_interval = float_in(0.0, 1.0)
unit_interval.__name__ = "number in [0, 1]"


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not > 0")
    return v


def int_at_least(lo: int) -> Callable[[str], int]:
    """An integer >= ``lo``."""
    def parse(text: str) -> int:
        v = _number(text, int)
        if v < lo:
            raise argparse.ArgumentTypeError(f"{text!r} is below the minimum {lo}")
        return v

    parse.__name__ = f"integer >= {lo}"
    return parse


#: An integer >= 1 (sizes, counts, batch sizes).
positive_int = int_at_least(1)
positive_int.__name__ = "positive integer"
#: An integer >= 0.
nonnegative_int = int_at_least(0)
nonnegative_int.__name__ = "non-negative integer"


def json_list_or_file(text: str) -> list | str:
    """An inline JSON list (``[1, 2, 3]``) or the path of an existing file (read by the caller)."""
    t = text.strip()
    if t.startswith("["):
        try:
            v = json.loads(t)
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid JSON list ({e.msg}); expected e.g. "
                                             "'[1, 2, 3]' or a file path") from None
        if not isinstance(v, list):
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON list")
        return v
    if not os.path.isfile(t):
        raise argparse.ArgumentTypeError(f"{text!r} is neither a JSON list (e.g. '[1, 2, 3]') nor an existing file")
    return t


def keyword_or(keywords: Sequence[str], other: Callable[[str], Any]) -> Callable[[str], Any]:
    """One of ``keywords`` (returned as is), else ``other(text)`` (e.g. :func:`json_list_or_file`)."""
    def parse(text: str) -> Any:
        if text in keywords:
            return text
        try:
            return other(text)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e}; or one of {', '.join(keywords)}") from None

    parse.__name__ = " | ".join(keywords) + " | " + getattr(other, "__name__", "value")
    return parse
