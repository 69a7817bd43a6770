"""Figures and tables for OrthoNets experiments: learning curves, filter banks and their
Gram matrices, channel attention weights, sweeps and a Markdown comparison table.

Each plotting function returns a pyplot ``Figure``, writes it to ``save_path`` when given
(through :func:`save_figure`) and, given ``ax``, draws there instead of a new figure. Under a
non-interactive backend a figure made here is closed in pyplot after drawing, so loops do
not pile up open figures.
"""
from __future__ import annotations

import math
import os
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .utils.hints import did_you_mean
from .utils.io import atomic_write

__all__ = ["plot_paired_runs", "plot_learning_curve", "plot_filters", "plot_gram_matrix", "plot_attention",
           "plot_curves_together", "comparison_table", "plot_sweep", "save_figure"]

_TITLE_SIZE = 13
_LABEL_SIZE = 11
_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}
_METRIC_LABELS = {"acc": "Accuracy", "loss": "CE Loss"}


def _to_numpy(x: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numpy array, paddle Tensor or nested list of "
                        f"numbers, got {type(x).__name__}: {err}") from None


def _bank_array(bank: Any, **limits: Optional[int]) -> np.ndarray:
    """``bank`` as a ``[c, h, w]`` array, checking each of ``limits`` is None or >= 1."""
    arr = _to_numpy(bank, "bank")
    if arr.ndim != 3 or arr.shape[0] == 0:
        hint = " (for a single filter pass bank[None])" if arr.ndim == 2 else ""
        raise ValueError(f"bank must have shape [channels, h, w] with channels >= 1, got shape "
                         f"{arr.shape}{hint}")
    for name, value in limits.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    return arr


def save_figure(fig: Figure, path: str, dpi: int = 120) -> str:
    """``fig.savefig`` through a temporary file renamed onto ``path`` (format from its
    suffix, PNG by default): a link at ``path`` is replaced, never written through."""
    fmt = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))


def _axes(ax: Optional[Axes], figsize: Tuple[float, float]) -> Tuple[Figure, Axes, bool]:
    """``ax``'s figure, or a new one-axes figure; the flag says the figure is made here."""
    if ax is not None:
        return ax.figure, ax, False
    fig = plt.figure(figsize=figsize)
    return fig, fig.add_subplot(1, 1, 1), True


def _finish(fig: Figure, save_path: Optional[str], owned: bool = True) -> Figure:
    """Lay out, save, and close when headless; a caller's figure (``ax``) is theirs to manage."""
    if owned:
        fig.tight_layout()
    if save_path is not None:
        save_figure(fig, save_path)
    if owned and matplotlib.get_backend().lower() in _NON_INTERACTIVE:
        plt.close(fig)
    return fig


def _style(ax: Axes, xlabel: str, ylabel: str, title: str, /, **legend: Any) -> None:
    """Axis labels, title, grid, and a legend (``legend`` holds its keywords)."""
    ax.set_xlabel(xlabel, fontsize=_LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=_LABEL_SIZE)
    ax.set_title(title, fontsize=_TITLE_SIZE)
    ax.grid(alpha=0.3)
    ax.legend(**legend)


def _series(record: Any, split: str, key: str, where: str
            ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(x, y) of ``record[split][key]`` against ``record[split]['iter']``, or None if absent."""
    if not isinstance(record, Mapping):
        raise TypeError(f"{where} must be a dict like {{'train': {{'loss': [...], 'iter': [...]}}, "
                        f"'val': {{...}}}}, got {type(record).__name__}")
    part = record.get(split)
    if part and not isinstance(part, Mapping):
        raise TypeError(f"{where}[{split!r}] must be a dict like {{{key!r}: [...], 'iter': [...]}}, "
                        f"got {type(part).__name__}")
    values = part.get(key) if part else None
    if values is None or len(values) == 0:
        return None
    y = np.array([float(v) for v in values], dtype=np.float64)
    x = np.array([float(v) for v in part.get("iter", [])], dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"{where}[{split!r}] has {len(y)} {key!r} values but {len(x)} 'iter' "
                         f"positions; record one 'iter' entry (the training step) per value")
    return x, y


def _recorded(record: Mapping) -> List[str]:
    return sorted({k for part in record.values() if isinstance(part, Mapping)
                   for k in part if k != "iter"}) or "none"


def _curves_figure(curves: Sequence[Tuple[str, Tuple[np.ndarray, np.ndarray], Optional[str]]],
                   ax: Optional[Axes], ylabel: str, title: str, save_path: Optional[str], /,
                   y_from: Optional[float] = None, **legend: Any) -> Figure:
    """One line per (label, (x, y), colour) against training steps, with a 5% y margin
    (the y-axis starts at ``y_from`` when given)."""
    fig, ax, owned = _axes(ax, (9, 5))
    steps = np.unique(np.concatenate([x for _, (x, _), _ in curves]))
    if len(steps) == 1 and all(len(y) == 1 for _, (_, y), _ in curves):
        return _bars(fig, ax, owned, curves, int(steps[0]), ylabel, title, save_path)
    for label, (x, y), color in curves:
        # Markers keep short runs readable: one epoch's single validation point has no line.
        ax.plot(x, y, color=color, label=label, linewidth=1.6,
                marker="o" if len(x) <= 60 else None, markersize=4)
    data = np.concatenate([y[np.isfinite(y)] for _, (_, y), _ in curves])
    if data.size:
        lo, hi = float(data.min()), float(data.max())
        lo = lo if y_from is None else min(lo, y_from)
        pad = (hi - lo) * 0.05 if hi > lo else max(abs(hi) * 0.05, 0.05)
        ax.set_ylim(lo - pad if y_from is None else lo, hi + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps: no 182.5
    _style(ax, "Training steps", ylabel, title, fontsize=_LABEL_SIZE, **legend)
    return _finish(fig, save_path, owned)


def _bars(fig: Figure, ax: Axes, owned: bool, curves, step: int, ylabel: str, title: str,
          save_path: Optional[str]) -> Figure:
    """One value per curve, all at one step (a 1-epoch run's epoch figures): a lone dot on
    a step axis says little, so one labelled bar each, from 0."""
    values = [float(y[0]) for _, (_, y), _ in curves]
    bars = ax.bar(range(len(curves)), values, width=0.6,
                  color=[color or f"C{i}" for i, (_, _, color) in enumerate(curves)])
    ax.bar_label(bars, fmt="%.4f", fontsize=_LABEL_SIZE)
    ax.set_xticks(range(len(curves)), [label for label, _, _ in curves], fontsize=_LABEL_SIZE)
    finite = [v for v in values if math.isfinite(v)]
    ax.set_ylim(min([0.0, *finite]) * 1.15, max([0.0, *finite]) * 1.15 or 1.0)
    ax.set_xlabel(f"after {step} training steps", fontsize=_LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=_LABEL_SIZE)
    ax.set_title(title, fontsize=_TITLE_SIZE)
    ax.grid(alpha=0.3, axis="y")
    return _finish(fig, save_path, owned)


def plot_learning_curve(record: Mapping[str, Mapping[str, Sequence[float]]], title: str = "loss",
                        ylabel: str = "CE Loss", save_path: Optional[str] = None,
                        ax: Optional[Axes] = None) -> Figure:
    """Train (red) and validation (cyan) curves of one metric of one run; when each split
    holds one value at the same step (a 1-epoch run's accuracy), a labelled bar each.

    Args:
        record: ``{"train": {title: [...], "iter": [...]}, "val": {...}}``; ``iter`` holds
            the global training step of each value. A missing or empty split is skipped.
        title: the metric key to plot, e.g. ``"loss"`` or ``"acc"``.
    """
    curves = [(split, _series(record, split, title, "record"), color)
              for split, color in (("train", "tab:red"), ("val", "tab:cyan"))]
    curves = [curve for curve in curves if curve[1] is not None]
    if not curves:
        raise ValueError(f"record has no {title!r} values in 'train' or 'val'; pass title= one "
                         f"of the recorded metrics: {_recorded(record)}")
    return _curves_figure(curves, ax, ylabel, f"Learning curve of {title}", save_path)


def plot_curves_together(records: Mapping[str, Mapping], metric: str = "acc", split: str = "val",
                         save_path: Optional[str] = None, ax: Optional[Axes] = None,
                         ylabel: Optional[str] = None, title: Optional[str] = None,
                         y_from: Optional[float] = 0.0) -> Figure:
    """One metric of several runs on one axes, e.g. OrthoNet-18 vs ResNet-18.

    Args:
        records: run name -> record shaped as in :func:`plot_learning_curve`.
        metric, split: what to plot, e.g. ``"acc"`` of ``"val"``.
        title: axes title (default ``"<Split> <metric>: run1 vs run2"``).
        y_from: where the y-axis starts (default 0, said in the y label), so a gap between
            runs shows at its true size; None zooms to the data.
    """
    if not isinstance(records, Mapping) or not records:
        raise ValueError("records must be a non-empty dict of run name -> record, e.g. "
                         "{'orthonet18': record_a, 'resnet18': record_b}")
    curves = []
    for name, record in records.items():
        xy = _series(record, split, metric, f"records[{name!r}]")
        if xy is None:  # a comparison silently missing a run would mislead
            raise ValueError(f"run {name!r} has no {metric!r} values in split {split!r}; "
                             f"recorded metrics: {_recorded(record)}; pass "
                             f"metric=/split= that every run has, or drop the run")
        curves.append((str(name), xy, None))
    split_name = {"train": "Train", "val": "Validation"}.get(split, split)
    if title is None:
        runs = " vs ".join(n for n, _, _ in curves) if len(curves) <= 3 else f"{len(curves)} runs"
        title = f"{split_name} {metric}: {runs}"
    ylabel = ylabel or f"{split_name} {_METRIC_LABELS.get(metric, metric)}"
    if y_from is not None:
        ylabel += f" (axis from {y_from:g})"
    return _curves_figure(curves, ax, ylabel, title, save_path, y_from=y_from, title="run")


def plot_filters(bank: Any, max_filters: int = 16, ncols: int = 8, title: Optional[str] = None,
                 save_path: Optional[str] = None, step: int = 1) -> Figure:
    """The first filters of a bank as small images on one shared, zero-centred scale.

    Args:
        bank: ``[c, h, w]`` numpy array or paddle Tensor (e.g. ``ChannelAttention.filters``).
        max_filters, ncols: how many filters (from channel 0) to draw, and how many per row.
        step: draw channels 0, step, 2*step, ... (each panel is titled with its channel).
    """
    arr = _bank_array(bank, max_filters=max_filters, ncols=ncols, step=step)
    c, h, w = arr.shape
    channels = np.arange(0, c, step)[:max_filters]
    arr, n = arr[channels], len(channels)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    # One symmetric scale for all filters, so signs and magnitudes compare across channels.
    vmax = float(np.abs(arr[:n]).max()) or 1.0
    fig = plt.figure(figsize=(1.4 * ncols + 1.0, 1.5 * nrows + 0.8))
    grid = fig.add_gridspec(nrows, ncols + 1, width_ratios=[1] * ncols + [0.08])
    for k in range(n):
        ax = fig.add_subplot(grid[k // ncols, k % ncols], xticks=[], yticks=[])
        image = ax.imshow(arr[k], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(f"ch {channels[k]}", fontsize=9)
    fig.colorbar(image, cax=fig.add_subplot(grid[:, ncols]))
    shown = f"first {n} of {c} filters" if step == 1 else \
        f"{n} of {c} filters (every {step}th: ch 0, {step}, ..., {channels[-1]})"
    fig.suptitle(title or f"Filter bank: {shown} ({h}x{w})", fontsize=_TITLE_SIZE)
    return _finish(fig, save_path)


def plot_gram_matrix(bank: Any, title: Optional[str] = None, save_path: Optional[str] = None,
                     max_channels: int = 64, group_size: Optional[int] = None,
                     ax: Optional[Axes] = None) -> Figure:
    """The Gram matrix ``B B^T`` of the flattened filters ``B = bank.reshape(c, h*w)``.

    For an orthonormal bank it is the identity (within each group when ``h*w < c``, where
    OrthoNets draws independent bases of ``h*w`` filters); the title reports the largest
    off-diagonal ``|value|``, i.e. how far the bank is from orthonormal.

    Args:
        bank: ``[c, h, w]`` numpy array or paddle Tensor.
        max_channels: only the first ``max_channels`` filters are used (readability).
        group_size: if given, draw group boundaries every ``group_size`` channels and also
            report the largest off-diagonal ``|value|`` inside the groups
            (``orthonets_paddle.layers.orthogonal_groups`` gives OrthoNets' groups: ``h*w``).
    """
    arr = _bank_array(bank, max_channels=max_channels, group_size=group_size)
    c, n = len(arr), min(len(arr), max_channels)
    gram = np.einsum("ihw,jhw->ij", arr[:n], arr[:n])
    off = np.abs(gram - np.diag(np.diag(gram)))  # the diagonal zeroed
    stats = f"max |off-diagonal| = {off.max():.3g}"
    if group_size is not None:
        group = np.arange(n) // group_size
        stats += f", within groups of {group_size}: {off[group[:, None] == group].max():.3g}"
    fig, ax, owned = _axes(ax, (6.8, 6))
    vmax = float(np.abs(gram).max()) or 1.0
    image = ax.imshow(gram, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    for b in range(group_size or n, n, group_size or n):
        ax.axhline(b - 0.5, color="black", linewidth=0.8)
        ax.axvline(b - 0.5, color="black", linewidth=0.8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    shown = f"first {n} of {c} channels" if n < c else f"{c} channels"
    ax.set_title(f"{title or 'Gram matrix of the filter bank'} ({shown})\n{stats}",
                 fontsize=_TITLE_SIZE - 1)
    ax.set_xlabel("channel", fontsize=_LABEL_SIZE)
    ax.set_ylabel("channel", fontsize=_LABEL_SIZE)
    return _finish(fig, save_path, owned)


def plot_attention(weights: Any, title: Optional[str] = None, save_path: Optional[str] = None,
                   class_names: Optional[Sequence[str]] = None,
                   labels: Optional[Sequence[int]] = None) -> Figure:
    """Per-channel attention weights of one block on a batch: a samples x channels heat map
    above the batch mean per channel with a ±1 std band.

    Args:
        weights: ``[batch, channels]`` excitation values in (0, 1), e.g.
            ``ChannelAttention.excitation(x)``; trailing 1x1 dims (``[b, c, 1, 1]``) are accepted.
        labels, class_names: each sample's class index (or name) as the heat map's row
            labels, shown as the names from ``class_names`` when given.
    """
    arr = _to_numpy(weights, "weights")
    arr = arr.reshape(arr.shape[:2]) if arr.ndim == 4 and arr.shape[2:] == (1, 1) else arr
    if arr.ndim != 2 or 0 in arr.shape:
        hint = " (for one sample pass weights[None])" if arr.ndim == 1 else ""
        raise ValueError(f"weights must have shape [batch, channels], got {arr.shape}{hint}")
    b, c = arr.shape
    if labels is None and class_names is not None:
        raise ValueError("class_names is given but labels is not; pass labels= with the "
                         "class index of each sample")
    row_labels = None if labels is None else _row_labels(labels, b, class_names)

    fig = plt.figure(figsize=(10, 6.5))
    grid = fig.add_gridspec(2, 2, width_ratios=[40, 1], height_ratios=[3, 1.3])
    ax_map = fig.add_subplot(grid[0, 0])
    ax_mean = fig.add_subplot(grid[1, 0], sharex=ax_map)
    # (0, 1) is the sigmoid's range; widen only if the values leave it.
    image = ax_map.imshow(arr, aspect="auto", cmap="viridis", vmin=min(0.0, float(arr.min())),
                          vmax=max(1.0, float(arr.max())), interpolation="nearest")
    fig.colorbar(image, cax=fig.add_subplot(grid[0, 1]), label="weight")
    ax_map.set_ylabel("sample", fontsize=_LABEL_SIZE)
    if row_labels is not None and b <= 40:
        ax_map.set_yticks(range(b), row_labels, fontsize=8 if b > 16 else 9)
    ax_map.tick_params(labelbottom=False)
    ax_map.set_title(title or f"Channel attention weights ({b} samples x {c} channels)",
                     fontsize=_TITLE_SIZE)

    mean, std = arr.mean(axis=0), arr.std(axis=0)
    ax_mean.fill_between(np.arange(c), mean - std, mean + std, color="tab:blue", alpha=0.2,
                         label="±1 std")
    ax_mean.plot(np.arange(c), mean, color="tab:blue", linewidth=1.4, label="batch mean")
    ax_mean.set_xlim(-0.5, c - 0.5)
    lo, hi = float((mean - std).min()), float((mean + std).max())
    span = (hi - lo) or 0.1
    ax_mean.set_ylim(lo - 0.1 * span, hi + 0.4 * span)  # headroom keeps the legend off the band
    _style(ax_mean, "channel", "mean weight", "", fontsize=9, loc="upper right", ncol=2)
    return _finish(fig, save_path)


def _row_labels(labels: Any, b: int, class_names: Optional[Sequence[str]]) -> List[str]:
    labels = list(np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels).reshape(-1))
    if len(labels) != b:
        raise ValueError(f"labels has {len(labels)} entries but weights has {b} samples; pass "
                         f"one label per sample")
    if class_names is None:
        return [str(v) for v in labels]
    for v in labels:
        if not isinstance(v, (int, np.integer)) or not 0 <= int(v) < len(class_names):
            raise ValueError(f"label {v!r} is not a class index in [0, {len(class_names)}) of "
                             f"class_names; pass integer class indices as labels")
    return [str(class_names[int(v)]) for v in labels]


_TABLE_KEYS = ("model", "val_acc", "params", "throughput")


def comparison_table(rows: Sequence[Mapping[str, Any]],
                     reference: Optional[Sequence[Mapping[str, Any]]] = None,
                     reference_label: str = "seed, GPU") -> str:
    """A Markdown table of models: validation accuracy, parameters, throughput.

    Args:
        rows: dicts with ``model`` and optionally ``val_acc`` (fraction in [0, 1]),
            ``params`` (count) and ``throughput`` (images/s); a missing or None value is "-".
        reference: rows of published / earlier results, listed under a separator row and
            with ``" (<reference_label>)"`` appended to the model name.
    """
    lines = ["| Model | Val acc | Parameters | Throughput (images/s) |",
             "|---|---:|---:|---:|"]
    lines += [_table_row(row, f"rows[{i}]", "") for i, row in enumerate(rows)]
    if reference:
        lines.append(f"| **reference ({reference_label})** | | | |")
        lines += [_table_row(row, f"reference[{i}]", f" ({reference_label})")
                  for i, row in enumerate(reference)]
    return "\n".join(lines)


def _table_row(row: Mapping[str, Any], where: str, suffix: str) -> str:
    if not isinstance(row, Mapping):
        raise TypeError(f"{where} must be a dict like {{'model': 'orthonet18', "
                        f"'val_acc': 0.94}}, got {type(row).__name__}")
    for key in row:
        if key not in _TABLE_KEYS:
            hint = did_you_mean(key, _TABLE_KEYS, cutoff=0.6)
            raise ValueError(f"{where} has unknown key {key!r}; {hint}valid keys: "
                             f"{', '.join(_TABLE_KEYS)}")
    if row.get("model") in (None, ""):
        raise ValueError(f"{where} has no 'model' name; add 'model': '<name>'")
    numbers = []
    for key in _TABLE_KEYS[1:]:
        try:
            value = float("nan" if row.get(key) is None else row[key])
        except (TypeError, ValueError):
            raise ValueError(f"{where}[{key!r}] must be a number, got {row[key]!r}") from None
        numbers.append(None if math.isnan(value) else value)  # missing, None or NaN: "-"
    acc, params, speed = numbers
    if acc is not None and not 0.0 <= acc <= 1.0:
        raise ValueError(f"{where}['val_acc'] = {acc} is not a fraction in [0, 1]; "
                         f"if it is a percentage, divide it by 100")
    cells = [str(row["model"]).replace("|", "\\|") + suffix,
             "-" if acc is None else f"{acc:.4f}",
             "-" if params is None else f"{int(round(params)):,}",
             "-" if speed is None else f"{speed:.1f}"]
    return "| " + " | ".join(cells) + " |"


def plot_sweep(rows: Sequence[Mapping[str, Any]], curves: Mapping[str, Mapping[str, Any]],
               baseline: Optional[str] = None, title: Optional[str] = None,
               save_path: Optional[str] = None) -> Figure:
    """An ablation sweep: accuracy per variant with 95% intervals (drawn whole, even where
    they leave [0, 1]), the mean training loss when recorded and, with more than one epoch,
    the mean validation accuracy per epoch.

    Args:
        rows: one per variant with ``label``, ``final_mean``, ``final_lo``, ``final_hi``,
            ``best_mean``, ``best_lo``, ``best_hi`` (the sweep summary rows).
        curves: ``label -> {"val_acc": [per-seed lists per epoch], "train_loss":
            [per-seed lists], "train_iter": [steps]}``.
        baseline: label of the baseline; its mean is drawn as a dashed line.
    """
    if not rows:
        raise ValueError("plot_sweep: no variant rows to plot")
    panels = [p for p in (
        ("train_loss", "Iteration", "Train loss (mean over seeds)", "Mean training curve"),
        ("val_acc", "Epoch", "Test accuracy (mean over seeds)", "Mean validation curve"))
        # a panel only where there is a curve: validation needs two epochs to be one
        if any(len(v) > (p[0] == "val_acc") for c in curves.values() for v in c.get(p[0], []))]
    ncols = 1 + len(panels)
    fig = plt.figure(figsize=(5.0 * ncols + (1.5 if ncols == 1 else 0), 4.2))
    ax = fig.add_subplot(1, ncols, 1)
    colour = {str(r["label"]): f"C{i % 10}" for i, r in enumerate(rows)}  # same in every panel
    for i, r in enumerate(rows):
        label, col = str(r["label"]), colour[str(r["label"])]
        for off, key, marker in ((-0.12, "final", "o"), (0.12, "best", "s")):
            mean, lo, hi = (float(r[f"{key}_{part}"]) for part in ("mean", "lo", "hi"))
            # the whole t interval, as the tables give it, even where it leaves [0, 1]
            err = np.nan_to_num([[mean - lo], [hi - mean]])
            ax.errorbar([i + off], [mean], yerr=err, fmt=marker, color=col, capsize=4)
        finals = [v[-1] for v in curves.get(r["label"], {}).get("val_acc", []) if len(v)]
        if finals:
            ax.scatter(np.full(len(finals), i - 0.12), finals, s=10, color=col, alpha=0.5,
                       edgecolors="black", linewidths=0.3, zorder=3)
        if r["label"] == baseline:
            ax.axhline(float(r["final_mean"]), ls="--", lw=0.8, color=col)
    ax.set_xticks(np.arange(len(rows)), [str(r["label"]) for r in rows], rotation=20)
    # The colours are the variants (tick labels); the legend says what each mark means.
    marks = [ax.errorbar([], [], yerr=[], fmt=m, color="0.3", capsize=4,
                         label=f"{what} epoch: mean and 95% t interval")
             for m, what in (("o", "final"), ("s", "best"))]
    if any(c.get("val_acc") for c in curves.values()):
        marks.append(ax.scatter([], [], s=10, color="0.5", edgecolors="black", linewidths=0.3,
                                label="final epoch, each seed"))
    if baseline is not None:
        marks.append(ax.plot([], [], ls="--", lw=0.8, color=colour.get(str(baseline), "0.3"),
                           label=f"{baseline}: final mean (baseline)")[0])
    # below the panel: inside, it would cover the intervals it explains
    _style(ax, "", "Test accuracy", "Accuracy per variant", handles=marks, fontsize=_LABEL_SIZE - 1,
           ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    for k, (key, xlabel, ylabel, panel_title) in enumerate(panels, start=2):
        ax = fig.add_subplot(1, ncols, k)
        for label, c in curves.items():
            seeds = [np.asarray(v, dtype=np.float64) for v in c.get(key, [])]
            if not seeds:
                continue
            n = min(len(v) for v in seeds)  # mean over seeds, cut to the shortest
            mean = np.mean([v[:n] for v in seeds], axis=0)
            epochs = key == "val_acc"
            x = np.arange(1, n + 1) if epochs else np.asarray(c.get("train_iter", np.arange(n)))[:n]
            ax.plot(x, mean, label=label, lw=1.2, color=colour.get(str(label)),
                    marker="o" if epochs or n < 3 else None)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _style(ax, xlabel, ylabel, panel_title, fontsize=_LABEL_SIZE - 2)
    if title:
        fig.suptitle(title, fontsize=_TITLE_SIZE)
    return _finish(fig, save_path)


def plot_paired_runs(runs: Mapping[str, Mapping[int, float]], pair: Tuple[str, str],
                     title: str = "final test accuracy per run", save_path: Optional[str] = None,
                     ax: Optional[Axes] = None) -> Figure:
    """Every run as a dot in its variant's column; the two variants of ``pair`` joined by a
    line per seed (grey: the first is higher, red: lower), so each paired difference shows."""
    fig, ax, owned = _axes(ax, (6.4, 4.2))
    names = list(runs)
    a, b = (names.index(p) for p in pair)
    for seed in sorted(set(runs[pair[0]]) & set(runs[pair[1]])):
        ya, yb = runs[pair[0]][seed], runs[pair[1]][seed]
        ax.plot([a, b], [ya, yb], color="0.6" if ya > yb else "tab:red", lw=0.8, alpha=0.7)
    for k, name in enumerate(names):
        y = np.asarray(list(runs[name].values()))
        ax.scatter(np.full(len(y), k), y, s=14, zorder=3, label=f"{name} (n={len(y)})")
        ax.errorbar(k + 0.18, y.mean(), yerr=y.std(ddof=1), fmt="k_", capsize=3, zorder=4)
    ax.set_xticks(range(len(names)), names)
    _style(ax, "variant (black: mean ± sd)", "final test accuracy", title, fontsize=_LABEL_SIZE - 2,
           loc="lower right")
    return _finish(fig, save_path, owned)
