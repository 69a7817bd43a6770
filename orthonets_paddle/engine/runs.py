"""Compare finished training runs: the seed's table and their learning curves together.

A run directory is what ``train`` writes: ``metrics.json`` (``arch``, ``best_acc``,
``loss_record``, ``acc_record``), ``config.yaml``, and optionally a ``benchmark.json`` from
``tools/benchmark.py --json RUN_DIR/benchmark.json`` for the throughput column.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import paddle

from ..utils.io import write_text

__all__ = ["RunError", "count_parameters", "load_run", "run_throughput", "compare_runs"]


class RunError(ValueError):
    """A run directory lacks the files ``compare_runs`` needs, or they are unreadable."""


def count_parameters(model: paddle.nn.Layer, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter values; fixed filter banks and BN statistics are
    buffers, so they are not counted (DESIGN.md's 'trainable' column)."""
    return int(sum(int(p.size) for p in model.parameters()
                   if not (trainable_only and p.stop_gradient)))


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read {path} ({type(exc).__name__}: {exc}); it may be truncated "
                       "(a run still writing it?)") from None


def run_throughput(run_dir: str, arch: str, backend: str = "dygraph") -> Optional[float]:
    """Inference images/s of ``arch`` from ``run_dir/benchmark.json``, or None.

    Takes ``backend``'s figure (else the first backend measured); a file holding just
    ``{"throughput": x}`` works too.
    """
    path = os.path.join(run_dir, "benchmark.json")
    if not os.path.isfile(path):
        return None
    data = _read_json(path)
    if isinstance(data, dict) and isinstance(data.get("throughput"), (int, float)):
        return float(data["throughput"])
    per = (data.get("models") or {}).get(arch) if isinstance(data, dict) else None
    if not per:
        return None
    stats = per.get(backend) or next((v for k, v in per.items() if k != "train"), None)
    return None if not stats else float(stats["images_per_sec"])


def load_run(run_dir: str) -> Dict[str, Any]:
    """One run's summary: ``{"dir", "arch", "best_acc", "params", "throughput", "records"}``.

    ``params`` counts the trainable parameters of the model built from the run's
    ``config.yaml`` ``Arch`` (None without a config).

    Raises:
        RunError: ``run_dir`` is not a folder or has no ``metrics.json``.
    """
    import yaml

    from ..models import build_model_from_config

    if not os.path.isdir(run_dir):
        raise RunError(f"run directory {run_dir} does not exist; give training output folders "
                       "(Global.output_dir of tools/train.py)")
    metrics_path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(metrics_path):
        raise RunError(f"{run_dir} has no metrics.json; is it a training output folder? "
                       "(tools/train.py writes it after the first epoch)")
    metrics = _read_json(metrics_path)
    arch_cfg = None
    cfg_path = os.path.join(run_dir, "config.yaml")
    if os.path.isfile(cfg_path):
        try:
            with open(cfg_path, encoding="utf-8") as f:
                arch_cfg = (yaml.safe_load(f) or {}).get("Arch")
        except (OSError, yaml.YAMLError) as exc:
            raise RunError(f"cannot read {cfg_path} ({exc})") from None
    arch = metrics.get("arch") or (arch_cfg or {}).get("name") or os.path.basename(run_dir)
    params = count_parameters(build_model_from_config(arch_cfg)) if arch_cfg else None
    best = metrics.get("best_acc")
    return {"dir": run_dir, "arch": arch, "arch_cfg": arch_cfg or {},
            "best_acc": best if isinstance(best, (int, float)) and best >= 0 else None,
            "params": params, "throughput": run_throughput(run_dir, arch),
            "records": {"acc": metrics.get("acc_record") or {},
                        "loss": metrics.get("loss_record") or {}}}


def _variant(run: Dict[str, Any], same_arch: Sequence[Dict[str, Any]]) -> str:
    """``squeeze=random, width=16``: the Arch keys whose values differ among the runs of
    one architecture (empty when none do)."""
    cfgs = [r.get("arch_cfg") or {} for r in same_arch]
    keys = sorted({k for c in cfgs for k in c} - {"name"})
    diff = [k for k in keys if len({repr(c.get(k)) for c in cfgs}) > 1]
    mine = run.get("arch_cfg") or {}
    return ", ".join(f"{k}={mine.get(k)}" for k in diff if k in mine)


def _labels(runs: Sequence[Dict[str, Any]]) -> List[str]:
    archs = [r["arch"] for r in runs]
    labels = []
    for a, r in zip(archs, runs):
        same = [q for q in runs if q["arch"] == a]
        variant = _variant(r, same) if len(same) > 1 else ""
        labels.append(f"{a} ({variant})" if variant else a)
    # Same arch and options: the folder name tells them apart.
    labels = [l if labels.count(l) == 1 else f"{l} ({os.path.basename(os.path.normpath(r['dir']))})"
              for l, r in zip(labels, runs)]
    # Same arch and same folder name: fall back to the position.
    return [f"{l} #{i + 1}" if labels.count(l) > 1 else l for i, l in enumerate(labels)]


def _has(record: Dict[str, Any], split: str, key: str) -> bool:
    return bool((record.get(split) or {}).get(key))


def compare_runs(run_dirs: Sequence[str], out_dir: Optional[str] = None,
                 reference: Optional[Sequence[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The comparison table (Markdown) and the learning curves of several runs.

    Args:
        run_dirs: training output folders.
        out_dir: where ``comparison.md`` and ``learning_curves.png`` go (default: none saved).
        reference: extra rows for ``plotting.comparison_table`` (e.g. the seed's figures).

    Returns:
        ``{"rows", "markdown", "markdown_file", "plot_file"}`` (files None when not saved).

    Raises:
        RunError: a folder is not a finished run.
    """
    import matplotlib.pyplot as plt

    from ..plotting import comparison_table, plot_curves_together, save_figure

    if not run_dirs:
        raise RunError("give at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    labels = _labels(runs)
    rows = [{"model": label, "val_acc": r["best_acc"], "params": r["params"],
             "throughput": r["throughput"]} for label, r in zip(labels, runs)]
    markdown = comparison_table(rows, reference=reference)
    out = {"rows": rows, "markdown": markdown, "markdown_file": None, "plot_file": None}
    if out_dir is None:
        return out
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, "comparison.md")
    write_text(markdown + "\n", md_path)
    out["markdown_file"] = md_path

    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    for ax, (metric, key) in zip(axes, (("acc", "acc"), ("loss", "loss"))):
        records = {label: r["records"][metric] for label, r in zip(labels, runs)}
        # Validation curves when every run has them (runs without an Eval loader do not).
        split = "val" if all(_has(rec, "val", key) for rec in records.values()) else "train"
        if all(_has(rec, split, key) for rec in records.values()):
            # A short title: the legend names the runs (a "a vs b vs c" title overlaps
            # the other panel's from three runs on).
            plot_curves_together(records, metric=key, split=split, ax=ax,
                                 title=f"{split.capitalize()} {key} ({len(runs)} runs)")
        else:
            ax.set_axis_off()
            ax.set_title(f"no {key} curves recorded")
    fig.tight_layout()
    png_path = os.path.join(out_dir, "learning_curves.png")
    save_figure(fig, png_path)
    plt.close(fig)
    out["plot_file"] = png_path
    return out
