"""The ``orthonets`` command: ``orthonets <command> [args]``, one module per command, each with
``main(argv=None, prog=None)``; ``tools/<script>.py`` are thin wrappers of the same modules.

Only the chosen command's module is imported, so ``orthonets -h`` answers without Paddle.
"""
import os
import sys
from typing import Optional, Sequence

__all__ = ["COMMANDS", "main", "use_cores"]

# command: (module, what it does); the modules' parsers hold the details.
COMMANDS = {
    "train": ("train", "train a model from a YAML config"),
    "eval": ("eval", "evaluate weights on DataLoader.Eval (top-1, top-5, loss)"),
    "infer": ("infer", "predict the classes of images"),
    "export": ("export", "export weights for Paddle Inference (and ONNX)"),
    "convert": ("convert", "convert a PyTorch checkpoint to .pdparams"),
    "benchmark": ("benchmark", "time inference and training"),
    "compare": ("compare", "compare finished training runs"),
    "sweep": ("sweep", "run an ablation grid of overrides x seeds"),
    "model-table": ("model_table", "params, FLOPs and latency of every model"),
    "train-det": ("train_det", "train a detector with an OrthoNet backbone (det extra)"),
}


def use_cores() -> None:
    """Paddle's CPU threads for this process (the ranks of a ``paddle.distributed.launch``
    run share the cores)."""
    from ..utils.threads import set_paddle_threads

    set_paddle_threads(ranks=int(os.environ.get("PADDLE_TRAINERS_NUM", "1")))


def _usage(prog: str) -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {prog} <command> [args]   ({prog} <command> -h: its arguments)", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None, prog: str = "orthonets"):
    """Run ``<command> [args]`` from ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(_usage(prog))
        return 0
    if not argv or argv[0] not in COMMANDS:
        from ..utils.hints import did_you_mean

        problem = (f"unknown command {argv[0]!r}; {did_you_mean(argv[0], COMMANDS)}".rstrip("; ")
                   if argv else "a command is needed")
        print(f"{prog}: error: {problem}\n\n{_usage(prog)}", file=sys.stderr)
        return 2
    from importlib import import_module

    module = import_module(f".{COMMANDS[argv[0]][0]}", __name__)
    return module.main(argv[1:], prog=f"{prog} {argv[0]}")
