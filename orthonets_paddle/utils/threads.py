"""CPU threads: the one place that decides how many and sets them.

Paddle's import sets ``OMP_NUM_THREADS=1`` when it is unset, and warns when it is above 1.
So the user's value is read here before Paddle is imported (``orthonets_paddle/__init__``
imports this module first), and applied after import with ``core.set_num_threads`` (the
MKL / oneDNN threads).
"""
import numbers
import os
import sys

__all__ = ["cpu_threads", "check_threads", "set_paddle_threads"]

# None: the user set nothing (or paddle was imported first and set its own "1").
_USER = os.environ.get("OMP_NUM_THREADS")
if "paddle" in sys.modules and _USER == "1":
    _USER = None


def cpu_threads(ranks: int = 1) -> int:
    """Threads per process: the user's OMP_NUM_THREADS, else the cores shared by ``ranks``."""
    if _USER and _USER.strip().isdigit():
        return max(1, int(_USER))
    return max(1, (os.cpu_count() or 1) // max(1, int(ranks)))


def check_threads(threads) -> int:
    """``threads`` as a positive int (ValueError otherwise)."""
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


def set_paddle_threads(threads=None, ranks: int = 1) -> int:
    """Set (and return) the threads of Paddle's CPU math library, process-wide: ``threads``,
    or ``cpu_threads(ranks)`` when None (``ranks`` processes share the cores)."""
    import paddle  # not at module level: the user's OMP_NUM_THREADS is read before Paddle's import

    n = check_threads(threads) if threads is not None else cpu_threads(ranks)
    paddle.base.core.set_num_threads(n)
    return n
