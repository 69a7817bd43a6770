"""CPU threads: the one place that decides how many and sets them.

Paddle's import sets ``OMP_NUM_THREADS=1`` when it is unset (one core), and prints a
warning at import when it is set above 1. So nothing here sets the variable: the user's
value is read once, before Paddle is imported (``orthonets_paddle/__init__`` imports this
module first), and the count is applied after import with Paddle's own
``core.set_num_threads``, which sets the math library's (MKL / oneDNN) threads.
"""
import os
import sys

__all__ = ["user_threads", "cpu_threads", "check_threads", "set_paddle_threads"]

# None: the user set nothing (or paddle was imported first and set its own "1").
_USER = os.environ.get("OMP_NUM_THREADS")
if "paddle" in sys.modules and _USER == "1":
    _USER = None


def user_threads():
    """The user's OMP_NUM_THREADS as an int, or None when they did not set one."""
    try:
        return max(1, int(_USER)) if _USER else None
    except ValueError:
        return None


def cpu_threads(ranks: int = 1) -> int:
    """Threads per process: the user's OMP_NUM_THREADS, else the cores shared by ``ranks``."""
    return user_threads() or max(1, (os.cpu_count() or 1) // max(1, int(ranks)))


def check_threads(threads) -> int:
    """``threads`` as a positive int.

    Raises:
        ValueError: it is not a positive integer.
    """
    import numpy as np
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


def set_paddle_threads(threads=None, ranks: int = 1) -> int:
    """Set the threads of Paddle's CPU math library (process-wide).

    Args:
        threads: the count; ``None`` uses ``cpu_threads(ranks)``.
        ranks: processes sharing the machine's cores (distributed training).

    Returns:
        The count that was set.
    """
    import paddle

    n = check_threads(threads) if threads is not None else cpu_threads(ranks)
    paddle.base.core.set_num_threads(n)
    return n
