"""Error handling shared by the command-line tools."""
from __future__ import annotations

import sys
from typing import Callable

__all__ = ["run", "USER_ERRORS", "is_interrupt"]

USER_ERRORS = (ValueError, RuntimeError, FileNotFoundError, OSError)


def is_interrupt(exc: BaseException) -> bool:
    """A Ctrl-C: Paddle re-raises one that lands inside backward() as OSError."""
    return isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, OSError) and "KeyboardInterrupt" in str(exc))


def run(main: Callable[[], object]) -> None:
    """Run a tool; user errors print one clear line and exit 2 instead of a traceback.
    Set ORTHONETS_DEBUG=1 for the full traceback."""
    import os
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except USER_ERRORS as exc:
        if is_interrupt(exc):
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        if os.environ.get("ORTHONETS_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
