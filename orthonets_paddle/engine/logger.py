"""Run records (the seed's shape), metrics.json, VisualDL and the progress bar."""
from __future__ import annotations

import logging
import sys
from typing import Any, Dict, Optional

from ..utils.io import write_json  # noqa: F401  (re-exported)

__all__ = ["get_logger", "new_records", "VisualDLWriter", "write_json", "progress"]


def get_logger(name: str = "orthonets_paddle", quiet: bool = False) -> logging.Logger:
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    return logger


def new_records() -> Dict[str, Any]:
    """The seed notebook's records: ``loss_record`` / ``acc_record`` with
    ``{'train': {metric: [...], 'iter': [...]}, 'val': {...}}``, plus one row per epoch."""
    return {
        "loss_record": {"train": {"loss": [], "iter": []}, "val": {"loss": [], "iter": []}},
        "acc_record": {"train": {"acc": [], "iter": []}, "val": {"acc": [], "iter": []}},
        "epochs": [],
    }


class VisualDLWriter:
    """Scalars to VisualDL under ``output_dir/vdl``; a no-op when disabled."""

    def __init__(self, logdir: Optional[str]):
        self.writer = None
        if logdir:
            try:
                from visualdl import LogWriter
            except ImportError:
                raise RuntimeError("Global.use_visualdl is true but visualdl is not installed: "
                                   "pip install visualdl, or set -o Global.use_visualdl=False") from None
            self.writer = LogWriter(logdir=logdir)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag=tag, value=float(value), step=int(step))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress(iterable, total: int, desc: str, enabled: bool):
    """A tqdm bar (loss, acc, images/s and ETA go in its postfix), or the bare iterable."""
    if not enabled:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False,
                mininterval=1.0, file=sys.stdout)
