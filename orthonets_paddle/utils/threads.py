"""CPU threads and DataLoader workers: the one place that decides how many and sets them.

Paddle's import sets ``OMP_NUM_THREADS=1`` when it is unset, and warns when it is above 1.
So the user's value is read here before Paddle is imported (``orthonets_paddle/__init__``
imports this module first), and applied after import with ``core.set_num_threads`` (the
MKL / oneDNN threads).

Compute threads and data workers are chosen together (``plan``) so that they do not
oversubscribe the cores: on 2 cores, 2 compute threads beside 2 workers trained 3x slower
than 1 thread (issue 30).
"""
import numbers
import os
import sys
from typing import Optional, Tuple

from .schema import NUM_WORKERS, Typed

__all__ = ["cpu_threads", "check_threads", "set_paddle_threads", "plan", "setup_threads",
           "loader_workers", "threads_line", "WORKERS", "GPU_WORKERS"]

# None: the user set nothing (or paddle was imported first and set its own "1").
_USER = os.environ.get("OMP_NUM_THREADS")
if "paddle" in sys.modules and _USER == "1":
    _USER = None

GPU_WORKERS = 4  # the seed's DataLoader workers: a GPU step outruns fewer on CIFAR (issue 30)
_CHOSEN: Optional[Tuple[int, int, int, str]] = None  # setup_threads': threads, workers, ranks, device


def _user_threads() -> Optional[int]:
    return max(1, int(_USER)) if _USER and _USER.strip().isdigit() else None


def cpu_threads(ranks: int = 1) -> int:
    """Threads per process: the user's OMP_NUM_THREADS, else the cores shared by ``ranks``."""
    return _user_threads() or max(1, (os.cpu_count() or 1) // max(1, int(ranks)))


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


def plan(cores: int, ranks: int = 1, device: str = "cpu", workers="auto",
         threads: Optional[int] = None) -> Tuple[int, int]:
    """(compute threads, DataLoader workers) per process; the rule, without side effects.

    Each of ``ranks`` processes gets ``cores // ranks`` cores. A number given for ``workers``
    or ``threads`` is kept; what is ``auto`` (None) is chosen so that compute threads and
    workers fit in the process's cores with one core left to the data (in the workers, or
    in the main process when there are none). On a CPU the model step bounds the run (the
    CIFAR augmentation runs at ~5,700 images/s on one core, the OrthoNet-18 step at ~20),
    so no workers and all cores but one compute: on 2 shared cores the Fashion-MNIST config
    trained at 451 images/s with 1 thread and no worker, 460 with 1 + 1 worker, 152 with
    2 threads (medians of 5); workers add processes a Ctrl-C reaches and Paddle's worker
    start-up to each epoch. On a GPU the data bounds it: ``GPU_WORKERS`` workers where the
    cores allow, and one compute thread.
    """
    per = max(1, int(cores) // max(1, int(ranks)))
    if workers is None or workers == "auto":
        workers = min(GPU_WORKERS, per - 1) if device == "gpu" else 0
        if threads is not None:
            workers = min(workers, max(0, per - threads))
    if threads is None:
        threads = 1 if device == "gpu" else max(1, per - max(1, workers))
    return threads, workers


def setup_threads(workers="auto", device: str = "cpu", ranks: Optional[int] = None) -> Tuple[int, int]:
    """Choose threads and workers for this machine (``plan`` with its cores, the ranks of a
    ``paddle.distributed.launch`` run, and OMP_NUM_THREADS), set Paddle's threads, and
    remember the workers for loaders whose ``num_workers`` is ``auto``.

    Returns:
        ``(threads, workers)``.
    """
    global _CHOSEN
    if ranks is None:
        ranks = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    threads, workers = plan(os.cpu_count() or 1, ranks, device, workers, _user_threads())
    set_paddle_threads(threads)
    _CHOSEN = threads, workers, ranks, device
    return threads, workers


def loader_workers(setting="auto") -> int:
    """A loader's ``num_workers``: ``setting``, or for ``auto`` (None) the workers that
    ``setup_threads`` chose (the machine's ``plan`` when it has not run)."""
    if setting is not None and setting != "auto":
        return setting
    if _CHOSEN is not None:
        return _CHOSEN[1]
    import paddle

    device = "gpu" if paddle.get_device().startswith("gpu") else "cpu"
    return plan(os.cpu_count() or 1, int(os.environ.get("PADDLE_TRAINERS_NUM", "1")), device,
                threads=_user_threads())[1]


def threads_line() -> str:
    """The one line a run prints at start: ``setup_threads``' choice."""
    threads, workers, ranks, device = _CHOSEN or (cpu_threads(), 0, 1, "cpu")
    cores = os.cpu_count() or 1
    where = f"per process, {ranks} processes on {cores} cores" if ranks > 1 else f"on {cores} cores"
    return (f"threads: {threads} compute + {workers} data worker{'' if workers == 1 else 's'} "
            f"{where}{' (GPU run)' if device == 'gpu' else ''}; set OMP_NUM_THREADS / "
            "DataLoader.Train.loader.num_workers to change")


class _Workers(Typed):
    """``loader.num_workers``: an integer >= 0, or ``auto`` (null too): ``plan`` picks."""

    def check(self, key, value):
        return "auto" if value is None or value == "auto" else super().check(key, value)

    def describe(self) -> str:
        return super().describe() + " or auto"


WORKERS = _Workers("int", min=0, max=NUM_WORKERS.max, why=NUM_WORKERS.why)
