"""CPU thread count. Imported before paddle: Paddle sets OMP_NUM_THREADS=1 at import
when it is unset, which would hide whether the user chose a value."""
import os
import sys

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
    return user_threads() or max(1, (os.cpu_count() or 1) // max(1, ranks))
