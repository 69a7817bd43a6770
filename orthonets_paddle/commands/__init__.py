"""The command-line commands: one module per command, each with ``main(argv=None, prog=None)``.

``tools/<script>.py`` are thin wrappers of these modules.
"""
import os

__all__ = ["use_cores"]


def use_cores() -> None:
    """Paddle's CPU threads for this process (the ranks of a ``paddle.distributed.launch``
    run share the cores)."""
    from ..utils.threads import set_paddle_threads

    set_paddle_threads(ranks=int(os.environ.get("PADDLE_TRAINERS_NUM", "1")))
