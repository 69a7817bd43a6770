"""Run records (the seed's shape), VisualDL scalars, the progress bar and log lines."""
from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import Any, Dict, Optional

__all__ = ["get_logger", "new_records", "VisualDLWriter", "progress", "step_line", "log_line"]


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
        if logdir:  # imported only when used (~0.6 s); the trainer checks it is installed
            from visualdl import LogWriter
            self.writer = LogWriter(logdir=logdir)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag=tag, value=float(value), step=int(step))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress(iterable, total: int, desc: str, enabled: bool):
    """A tqdm bar, or the bare iterable when disabled or stdout is not a terminal (in a
    file its carriage returns would fill the log, which gets ``step_line`` lines instead)."""
    if not enabled or not sys.stdout.isatty():
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False,
                mininterval=1.0, file=sys.stdout)


def step_line(epoch: int, epochs: int, step: int, steps: int, lr: float, loss: float,
              acc: float, images_per_sec: float, eta_seconds: float) -> str:
    """A PaddleClas-style progress line, e.g. ``[Train][Epoch 1/2][Iter: 10/468]lr: 0.10000,
    loss: 2.30126, top1: 0.10938, ips: 812.3 images/s, eta: 0:05:02``: as PaddleClas's
    ``log_info``, the epoch counts from 1 and the iteration from 0 within the epoch; loss,
    acc and images/s are the epoch's so far."""
    eta = datetime.timedelta(seconds=int(max(0.0, eta_seconds)))
    return (f"[Train][Epoch {epoch}/{epochs}][Iter: {step}/{steps}]lr: {lr:.5f}, "
            f"loss: {loss:.5f}, top1: {acc:.5f}, ips: {images_per_sec:.1f} images/s, eta: {eta}")


def log_line(log: logging.Logger, bar: Any, text: str) -> None:
    """Log ``text``; above the tqdm ``bar`` when one is drawn, so the bar stays intact."""
    if hasattr(bar, "write") and hasattr(bar, "set_postfix"):
        if log.isEnabledFor(logging.INFO):
            bar.write(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stdout)
    else:
        log.info(text)
