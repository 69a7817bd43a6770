"""Error handling shared by the command-line tools: one line per failure, SIGTERM handled
like Ctrl-C (a clean stop that releases the run folder), messages of bounded length."""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
from typing import Callable, Iterator, Optional, Sequence

__all__ = ["run", "get_parser", "parse_args", "USER_ERRORS", "is_interrupt", "Terminated", "sigterm_as_interrupt",
           "cap_text", "MAX_MESSAGE"]

USER_ERRORS = (ValueError, RuntimeError, FileNotFoundError, OSError)
MAX_MESSAGE = 2000  # characters of an error line; a value in a message can be huge


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler, an OOM watchdog): handled as a Ctrl-C is."""


def is_interrupt(exc: BaseException) -> bool:
    """A Ctrl-C: Paddle re-raises one that lands inside backward() as OSError."""
    return isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, OSError) and ("KeyboardInterrupt" in str(exc) or "Terminated" in str(exc)))


def cap_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = str(text)
    return text if len(text) <= limit else (
        text[:limit] + f"... ({len(text) - limit} more characters)")


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` in the main thread within the block, so ``finally``
    blocks run (not Paddle's handler and its C++ dump); a no-op in other threads."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _interrupted(exc: BaseException) -> None:
    term = isinstance(exc, Terminated) or (isinstance(exc, OSError) and "Terminated" in str(exc))
    what = "terminated (SIGTERM)" if term else "interrupted"
    resume = getattr(exc, "resume_dir", None)
    if resume:
        cmd = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
        what += f"; resume with: {cmd} -o Global.checkpoints={shlex.quote(str(resume))}"
    elif getattr(exc, "note", None):
        what += f"; {exc.note}"
    print(cap_text(what), file=sys.stderr, flush=True)
    sys.exit(143 if term else 130)


def run(main: Callable[[], object]) -> None:
    """Run a tool: a user error prints one line and exits 2 (ORTHONETS_DEBUG=1: traceback),
    Ctrl-C 130 and SIGTERM 143, with the resume command when a training run stopped."""
    try:
        with sigterm_as_interrupt():
            main()
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except USER_ERRORS as exc:
        if is_interrupt(exc):
            _interrupted(exc)
        if os.environ.get("ORTHONETS_DEBUG"):
            raise
        print(cap_text(f"error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        sys.exit(2)


def get_parser(description: str, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The tools' shared ``-c`` / ``-o`` arguments (``prog``: the command's name in usage
    lines; default the script's)."""
    # Raw: the tools' docstrings hold example commands, one a line; argparse would reflow them.
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="YAML config, e.g. configs/orthonet18_cifar10.yaml")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. -o Global.epochs=1 (repeatable)")
    return parser


def parse_args(parser, argv: Optional[Sequence[str]] = None):
    """The arguments of ``parser`` (a description: ``get_parser``'s); ``-c`` is required."""
    parser = get_parser(parser) if isinstance(parser, str) else parser
    args = parser.parse_args(argv)
    if not args.config:
        parser.error("-c/--config is required (e.g. -c configs/orthonet18_cifar10.yaml)")
    return args
