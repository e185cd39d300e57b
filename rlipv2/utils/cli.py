"""Command-line entry points: bad input ends in one clear line on stderr, not a traceback."""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

#: Errors that mean "the input is bad" (a file, a field, a shape); anything else is a bug and keeps its traceback.
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError, EOFError)


def run_cli(main: Callable[[Sequence[str]], Any], prog: str, argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; on an input error print ``prog: error: <message>`` and return 2 (else 0).

    Set ``RLIPV2_TRACEBACK=1`` to get the full traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        main(argv)
    except INPUT_ERRORS as e:
        if os.environ.get("RLIPV2_TRACEBACK", "0") not in ("", "0"):
            raise
        logging.getLogger(__name__).debug("input error", exc_info=True)
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{prog}: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return 2
    return 0
