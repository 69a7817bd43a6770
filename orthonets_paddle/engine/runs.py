"""Compare finished training runs: the seed's table and their learning curves together.

A run directory is what ``train`` writes (``metrics.json``, ``config.yaml``), optionally
with a ``benchmark.json`` from ``tools/benchmark.py --json`` for the throughput column.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import matplotlib.pyplot as plt
import paddle

from .. import plotting  # the module, so a test can stand in for plot_curves_together
from ..models import build_model_from_config
from ..utils.io import write_text
from .config import ConfigError, load_config

__all__ = ["RunError", "count_parameters", "load_run", "run_config", "run_throughput",
           "compare_runs"]


class RunError(ValueError):
    """A run directory lacks the files ``compare_runs`` needs, or they are unreadable."""


def count_parameters(model: paddle.nn.Layer, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter values; fixed filter banks and BN statistics are
    buffers, so they are not counted (DESIGN.md's 'trainable' column)."""
    return sum(int(p.size) for p in model.parameters() if not (trainable_only and p.stop_gradient))


def _read(path: str, parse=json.load) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f)
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read {path} ({type(exc).__name__}: {exc}); it may be truncated "
                       "(a run still writing it?)") from None


def run_config(run_dir: str, required: bool = False) -> Optional[Dict[str, Any]]:
    """``run_dir/config.yaml`` read and checked as ``train`` reads a config (bounded YAML,
    every key and value), or None without one (unless ``required``); RunError naming the
    file otherwise."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        if required:
            raise RunError(f"{path} not found; is {run_dir} a training output folder?")
        return None
    try:
        return load_config(path)
    except (ConfigError, OSError) as exc:
        msg = str(exc)
        raise RunError(msg if msg.startswith(path) else f"{path}: {msg}") from None


def run_throughput(run_dir: str, arch: str, backend: str = "dygraph") -> Optional[float]:
    """Inference images/s of ``arch`` from ``run_dir/benchmark.json`` (``backend``'s figure,
    else the first backend measured), or None."""
    path = os.path.join(run_dir, "benchmark.json")
    per = _read(path).get("models", {}).get(arch) if os.path.isfile(path) else None
    stats = per and (per.get(backend) or next((v for k, v in per.items() if k != "train"), None))
    return float(stats["images_per_sec"]) if stats else None


def load_run(run_dir: str) -> Dict[str, Any]:
    """One run: ``{"dir", "arch", "arch_cfg", "best_acc", "params", "throughput",
    "records"}``; ``params`` counts the trainable parameters of the model its
    ``config.yaml`` builds (None without one).

    Raises:
        RunError: ``run_dir`` is not a folder or has no ``metrics.json``.
    """
    if not os.path.isdir(run_dir):
        raise RunError(f"run directory {run_dir} does not exist; give training output folders "
                       "(Global.output_dir of tools/train.py)")
    if not os.path.isfile(os.path.join(run_dir, "metrics.json")):
        raise RunError(f"{run_dir} has no metrics.json; is it a training output folder? "
                       "(tools/train.py writes it after the first epoch)")
    metrics = _read(os.path.join(run_dir, "metrics.json"))
    arch_cfg = (run_config(run_dir) or {}).get("Arch")
    arch = metrics.get("arch") or (arch_cfg or {}).get("name") or os.path.basename(run_dir)
    best = metrics.get("best_acc")
    return {"dir": run_dir, "arch": arch, "arch_cfg": arch_cfg or {},
            "best_acc": best if isinstance(best, (int, float)) and best >= 0 else None,
            "params": _count(arch_cfg) if arch_cfg else None,
            "throughput": run_throughput(run_dir, arch),
            "records": {"acc": metrics.get("acc_record") or {},
                        "loss": metrics.get("loss_record") or {}}}


def _count(arch_cfg: Dict[str, Any]) -> int:
    with paddle.LazyGuard():  # shapes only: nothing is allocated for a count
        return count_parameters(build_model_from_config(arch_cfg))


def _labels(runs: Sequence[Dict[str, Any]]) -> List[str]:
    """The arch, then the Arch options that differ among runs of that arch
    (``resnet18 (squeeze=random)``), then the folder name, then the position."""
    labels = []
    for r in runs:
        cfgs = [q["arch_cfg"] for q in runs if q["arch"] == r["arch"]]
        keys = sorted({k for c in cfgs for k in c} - {"name"})
        diff = ", ".join(f"{k}={r['arch_cfg'][k]}" for k in keys if k in r["arch_cfg"]
                         and len({repr(c.get(k)) for c in cfgs}) > 1)
        labels.append(f"{r['arch']} ({diff})" if diff else r["arch"])
    labels = [l if labels.count(l) == 1 else f"{l} ({os.path.basename(os.path.normpath(r['dir']))})"
              for l, r in zip(labels, runs)]
    return [f"{l} #{i + 1}" if labels.count(l) > 1 else l for i, l in enumerate(labels)]


def compare_runs(run_dirs: Sequence[str], out_dir: Optional[str] = None,
                 reference: Optional[Sequence[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The comparison table (Markdown) of several runs and, into ``out_dir`` if given,
    ``comparison.md`` and ``learning_curves.png``. ``reference``: extra rows for
    ``plotting.comparison_table`` (e.g. the seed's figures).

    Returns:
        ``{"rows", "markdown", "markdown_file", "plot_file"}`` (files None when not saved).
    """
    if not run_dirs:
        raise RunError("give at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    labels = _labels(runs)
    rows = [{"model": label, "val_acc": r["best_acc"], "params": r["params"],
             "throughput": r["throughput"]} for label, r in zip(labels, runs)]
    markdown = plotting.comparison_table(rows, reference=reference)
    out = {"rows": rows, "markdown": markdown, "markdown_file": None, "plot_file": None}
    if out_dir is None:
        return out
    os.makedirs(out_dir, exist_ok=True)
    out["markdown_file"] = write_text(markdown + "\n", os.path.join(out_dir, "comparison.md"))
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    for ax, key in zip(axes, ("acc", "loss")):
        records = {label: r["records"][key] for label, r in zip(labels, runs)}
        has = {split: all((rec.get(split) or {}).get(key) for rec in records.values())
               for split in ("val", "train")}
        # Validation curves when every run has them (runs without an Eval loader do not).
        split = "val" if has["val"] else "train"
        if has[split]:
            # A short title: the legend names the runs (a "a vs b vs c" title overlaps
            # the other panel's from three runs on).
            plotting.plot_curves_together(records, metric=key, split=split, ax=ax,
                                          title=f"{split.capitalize()} {key} ({len(runs)} runs)")
        else:
            ax.set_axis_off()
            ax.set_title(f"no {key} curves recorded")
    fig.tight_layout()
    out["plot_file"] = os.path.join(out_dir, "learning_curves.png")
    plotting.save_figure(fig, out["plot_file"])
    plt.close(fig)
    return out
