"""Error handling shared by the command-line tools: one line per failure, SIGTERM handled
like Ctrl-C (a clean stop that releases the run folder), messages of bounded length."""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import signal
import sys
import threading
from typing import Callable, Iterator, Optional, Sequence

__all__ = ["run", "get_parser", "new_parser", "as_invoked", "config_path", "packaged_configs", "parse_args", "USER_ERRORS", "is_interrupt", "Terminated", "sigterm_as_interrupt",
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


# tools/<script>.py -> <command> of `orthonets <command>` where the names differ
_COMMAND_OF = {"export_model": "export", "convert_torch_weights": "convert",
               "model_table": "model-table", "train_det": "train-det"}


def as_invoked(text: str, prog: Optional[str]) -> str:
    """``text`` with each ``python tools/<script>.py`` (and ``tools/<script>.py``) written as
    the user runs it: ``prog`` is the command (``orthonets train``), None for the scripts."""
    if not prog:
        return text
    base = prog.rsplit(" ", 1)[0]
    return re.sub(r"(?:python )?tools/(\w+)\.py",
                  lambda m: f"{base} {_COMMAND_OF.get(m.group(1), m.group(1))}", text)


def new_parser(description: str, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """A tool's parser: its docstring as description, the examples written for ``prog``."""
    # Raw: the tools' docstrings hold example commands, one a line; argparse would reflow them.
    return argparse.ArgumentParser(prog=prog, description=as_invoked(description, prog),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def packaged_configs() -> str:
    """The shipped configs: ``orthonets_paddle/configs`` when installed (setup.py maps the
    checkout's ``configs/`` there), else the checkout's ``configs/``."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    inside = os.path.join(package, "configs")
    return inside if os.path.isdir(inside) else os.path.join(os.path.dirname(package), "configs")


def config_path(path: str) -> str:
    """``-c``'s value: ``path`` when it exists, else the shipped config it names: a bare name
    (``orthonet18_fashionmnist``, ``.yaml`` optional) or ``configs/<name>`` as the README
    writes it, so both work after ``pip install`` outside a checkout."""
    if os.path.exists(path):
        return path
    rel = path.replace(os.sep, "/")
    rel = rel[2:] if rel.startswith("./") else rel
    rel = rel[len("configs/"):] if rel.startswith("configs/") else rel
    root = packaged_configs()
    for name in [rel] if os.path.splitext(rel)[1] else [rel + ".yaml", rel + ".yml"]:
        if os.path.isfile(os.path.join(root, name)):
            return os.path.join(root, name)
    if "/" in path or os.sep in path or not os.path.isdir(root):
        return path  # the loader says it is missing
    shipped = sorted(os.path.splitext(n)[0] for n in os.listdir(root) if n.endswith(".yaml"))
    from .hints import did_you_mean

    raise argparse.ArgumentTypeError(
        f"no file {path!r} and no shipped config of that name; {did_you_mean(rel, shipped)}"
        f"shipped: {', '.join(shipped)} (and det/*.yml)")


def get_parser(description: str, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The tools' shared ``-c`` / ``-o`` arguments (``prog``: the command's name in usage
    lines; default the script's)."""
    parser = new_parser(description, prog)
    parser.add_argument("-c", "--config", type=config_path,
                        help="YAML config, e.g. configs/orthonet18_cifar10.yaml, or the name of a "
                             "shipped one, e.g. orthonet18_fashionmnist")
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
