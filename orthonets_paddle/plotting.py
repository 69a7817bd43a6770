"""Figures and tables for OrthoNets experiments.

Learning curves (one run, or several runs on one axes), filter banks and their
Gram matrices, per-channel attention weights, and a Markdown comparison table.

Every plotting function returns a ``matplotlib.figure.Figure`` and takes an
optional ``save_path`` (PNG by default; parent directories are created).
Figures are created through pyplot, so in Jupyter they display like any plot
(end a call with ``;`` or assign the result to avoid a second copy from the
returned value). Under a non-interactive backend (scripts, tests, ``Agg``)
each figure is closed in pyplot after drawing, so calling these functions in a
loop does not pile up open figures; the returned figure can still be saved.
Without a display, matplotlib itself falls back to ``Agg``.
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

from .utils.hints import did_you_mean
from .utils.io import atomic_write

__all__ = ["plot_learning_curve", "plot_filters", "plot_gram_matrix", "plot_attention",
           "plot_curves_together", "comparison_table", "plot_sweep", "save_figure"]

_DPI = 120
_TITLE_SIZE = 13
_LABEL_SIZE = 11
_MARKER_MAX = 60  # series with at most this many points are drawn with markers
_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}
_SPLIT_NAMES = {"train": "Train", "val": "Validation", "test": "Test"}
_METRIC_LABELS = {"acc": "Accuracy", "loss": "CE Loss", "top1": "Top-1 accuracy",
                  "top5": "Top-5 accuracy"}


# --------------------------------------------------------------------- helpers
def _to_numpy(x: Any, name: str) -> np.ndarray:
    """numpy view of an array-like or a paddle Tensor, without importing paddle."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numpy array, paddle Tensor or nested list of "
                        f"numbers, got {type(x).__name__}: {err}") from None


def _bank_array(bank: Any) -> np.ndarray:
    arr = _to_numpy(bank, "bank")
    if arr.ndim != 3:
        hint = " (for a single filter pass bank[None])" if arr.ndim == 2 else ""
        raise ValueError(f"bank must have shape [channels, h, w], got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError("bank has no filters (shape[0] == 0)")
    return arr


def _new_figure(figsize: Tuple[float, float]) -> Figure:
    return plt.figure(figsize=figsize)


def save_figure(fig: Figure, path: str, dpi: int = _DPI) -> str:
    """``fig.savefig`` through a temporary file renamed onto ``path`` (format from its
    suffix, PNG by default): a link at ``path`` is replaced, never written through."""
    fmt = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))


def _finish(fig: Figure, save_path: Optional[str], owned: bool) -> Figure:
    """tight_layout (own figures only), save, and detach from pyplot when headless."""
    if owned:
        fig.tight_layout()
    if save_path is not None:
        save_figure(fig, save_path)
    # Only for figures made here: a caller's figure passed via ``ax`` is theirs to manage.
    if owned and matplotlib.get_backend().lower() in _NON_INTERACTIVE:
        plt.close(fig)
    return fig


def _axes(ax: Optional[Axes], figsize: Tuple[float, float]) -> Tuple[Figure, Axes, bool]:
    if ax is not None:
        return ax.figure, ax, False
    fig = _new_figure(figsize)
    return fig, fig.add_subplot(1, 1, 1), True


def _series(record: Mapping, split: str, key: str, where: str
            ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(x, y) of ``record[split][key]`` against ``record[split]['iter']``, or None if absent."""
    part = record.get(split)
    if not part:
        return None
    if not isinstance(part, Mapping):
        raise TypeError(f"{where}[{split!r}] must be a dict like {{{key!r}: [...], 'iter': [...]}}, "
                        f"got {type(part).__name__}")
    values = part.get(key)
    if values is None or len(values) == 0:
        return None
    if "iter" not in part:
        raise ValueError(f"{where}[{split!r}] has {len(values)} {key!r} values but no 'iter' "
                         f"positions; add {where}[{split!r}]['iter'] with the training step of "
                         f"each value")
    y = np.array([float(v) for v in values], dtype=np.float64)
    x = np.array([float(v) for v in part["iter"]], dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"{where}[{split!r}] has {len(y)} {key!r} values but {len(x)} 'iter' "
                         f"positions; record one 'iter' entry per value")
    return x, y


def _check_record(record: Any, where: str) -> None:
    if not isinstance(record, Mapping):
        raise TypeError(f"{where} must be a dict like {{'train': {{'loss': [...], 'iter': [...]}}, "
                        f"'val': {{...}}}}, got {type(record).__name__}")


def _available_keys(record: Mapping) -> List[str]:
    keys = set()
    for part in record.values():
        if isinstance(part, Mapping):
            keys.update(k for k in part if k != "iter")
    return sorted(keys)


def _set_ylim_with_margin(ax: Axes, values: Sequence[np.ndarray], frac: float = 0.05) -> None:
    data = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    if data.size == 0:
        return
    lo, hi = float(data.min()), float(data.max())
    pad = (hi - lo) * frac if hi > lo else max(abs(hi) * frac, frac)
    ax.set_ylim(lo - pad, hi + pad)


# ------------------------------------------------------------ learning curves
def plot_learning_curve(record: Mapping[str, Mapping[str, Sequence[float]]], title: str = "loss",
                        ylabel: str = "CE Loss", save_path: Optional[str] = None,
                        ax: Optional[Axes] = None) -> Figure:
    """Train (red) and validation (cyan) curves of one metric of one run.

    Args:
        record: ``{"train": {title: [...], "iter": [...]}, "val": {title: [...], "iter": [...]}}``;
            ``iter`` holds the global training step of each value (train is logged every
            few steps, val once per epoch). A missing or empty split is skipped.
        title: the metric key to plot, e.g. ``"loss"`` or ``"acc"``.
        ylabel: y-axis label.
        save_path: if given, the figure is written there (PNG unless the suffix says otherwise).
        ax: draw into this axes instead of a new figure.

    Returns:
        The figure.

    Raises:
        ValueError: a split's values and ``iter`` differ in length, or neither split has
            values for ``title``.
    """
    _check_record(record, "record")
    curves = [(split, _series(record, split, title, "record"), color)
              for split, color in (("train", "tab:red"), ("val", "tab:cyan"))]
    curves = [(split, xy, color) for split, xy, color in curves if xy is not None]
    if not curves:
        raise ValueError(f"record has no {title!r} values in 'train' or 'val'; pass title= one "
                         f"of the recorded metrics: {_available_keys(record) or 'none recorded'}")
    fig, ax, owned = _axes(ax, (9, 5))
    for split, (x, y), color in curves:
        # Markers keep short runs readable: one epoch's single validation point has no line.
        ax.plot(x, y, color=color, label=split, linewidth=1.6,
                marker="o" if len(x) <= _MARKER_MAX else None, markersize=4)
    _set_ylim_with_margin(ax, [y for _, (_, y), _ in curves])
    ax.set_xlabel("Training steps", fontsize=_LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=_LABEL_SIZE)
    ax.set_title(f"Learning curve of {title}", fontsize=_TITLE_SIZE)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=_LABEL_SIZE)
    return _finish(fig, save_path, owned)


def plot_curves_together(records: Mapping[str, Mapping], metric: str = "acc", split: str = "val",
                         save_path: Optional[str] = None, ax: Optional[Axes] = None,
                         ylabel: Optional[str] = None, title: Optional[str] = None) -> Figure:
    """One metric of several runs on one axes, e.g. OrthoNet-18 vs ResNet-18.

    Args:
        records: run name -> record shaped as in :func:`plot_learning_curve`.
        metric: the metric key, e.g. ``"acc"`` or ``"loss"``.
        split: ``"train"`` or ``"val"``.
        save_path: if given, the figure is written there.
        ax: draw into this axes instead of a new figure.
        ylabel: y-axis label (default derived from ``metric``).
        title: axes title (default ``"<Split> <metric>: run1 vs run2"``).

    Returns:
        The figure; the legend holds the run names.

    Raises:
        ValueError: ``records`` is empty, or a run has no ``records[run][split][metric]``.
    """
    if not isinstance(records, Mapping) or not records:
        raise ValueError("records must be a non-empty dict of run name -> record, e.g. "
                         "{'orthonet18': record_a, 'resnet18': record_b}")
    curves = []
    for name, record in records.items():
        _check_record(record, f"records[{name!r}]")
        xy = _series(record, split, metric, f"records[{name!r}]")
        if xy is None:
            # A comparison silently missing a run would mislead, so this is an error.
            raise ValueError(f"run {name!r} has no {metric!r} values in split {split!r}; "
                             f"recorded metrics: {_available_keys(record) or 'none'}; pass "
                             f"metric=/split= that every run has, or drop the run")
        curves.append((str(name), xy))
    fig, ax, owned = _axes(ax, (9, 5))
    for name, (x, y) in curves:
        ax.plot(x, y, label=name, linewidth=1.6, marker="o" if len(y) <= 30 else None,
                markersize=4)
    _set_ylim_with_margin(ax, [y for _, (_, y) in curves])
    split_name = _SPLIT_NAMES.get(split, split)
    if title is None:
        names = [n for n, _ in curves]
        runs = " vs ".join(names) if len(names) <= 3 else f"{len(names)} runs"
        title = f"{split_name} {metric}: {runs}"
    ax.set_xlabel("Training steps", fontsize=_LABEL_SIZE)
    ax.set_ylabel(ylabel or f"{split_name} {_METRIC_LABELS.get(metric, metric)}",
                  fontsize=_LABEL_SIZE)
    ax.set_title(title, fontsize=_TITLE_SIZE)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=_LABEL_SIZE, title="run")
    return _finish(fig, save_path, owned)


# ---------------------------------------------------------------- filter banks
def plot_filters(bank: Any, max_filters: int = 16, ncols: int = 8, title: Optional[str] = None,
                 save_path: Optional[str] = None) -> Figure:
    """The first filters of a bank as small images on one shared, zero-centred scale.

    Args:
        bank: ``[c, h, w]`` numpy array or paddle Tensor (e.g. ``ChannelAttention.filters``).
        max_filters: how many filters (from channel 0) to draw.
        ncols: filters per row.
        title: figure title (default describes the bank).
        save_path: if given, the figure is written there.

    Returns:
        The figure: one axes per drawn filter (titled with its channel index) plus a colorbar.

    Raises:
        ValueError: ``bank`` is not 3-D, or ``max_filters`` / ``ncols`` is not positive.
    """
    arr = _bank_array(bank)
    if max_filters < 1 or ncols < 1:
        raise ValueError(f"max_filters and ncols must be >= 1, got max_filters={max_filters}, "
                         f"ncols={ncols}")
    c, h, w = arr.shape
    n = min(c, max_filters)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    shown = arr[:n]
    # One symmetric scale for all filters, so signs and magnitudes compare across channels.
    vmax = float(np.abs(shown).max()) or 1.0
    fig = _new_figure((1.4 * ncols + 1.0, 1.5 * nrows + 0.8))
    grid = fig.add_gridspec(nrows, ncols + 1, width_ratios=[1] * ncols + [0.08])
    image = None
    for k in range(n):
        ax = fig.add_subplot(grid[k // ncols, k % ncols])
        image = ax.imshow(shown[k], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(f"ch {k}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    cax = fig.add_subplot(grid[:, ncols])
    fig.colorbar(image, cax=cax)
    fig.suptitle(title or f"Filter bank: first {n} of {c} filters ({h}x{w})",
                 fontsize=_TITLE_SIZE)
    return _finish(fig, save_path, True)


def plot_gram_matrix(bank: Any, title: Optional[str] = None, save_path: Optional[str] = None,
                     max_channels: int = 64, group_size: Optional[int] = None,
                     ax: Optional[Axes] = None) -> Figure:
    """The Gram matrix ``B B^T`` of the flattened filters ``B = bank.reshape(c, h*w)``.

    For an orthonormal bank it is the identity (within each group when ``h*w < c``, where
    OrthoNets draws independent bases of ``h*w`` filters); the title reports the largest
    off-diagonal ``|value|``, i.e. how far the bank is from orthonormal.

    Args:
        bank: ``[c, h, w]`` numpy array or paddle Tensor.
        title: first title line (default ``"Gram matrix of the filter bank"``).
        save_path: if given, the figure is written there.
        max_channels: only the first ``max_channels`` filters are used (readability).
        group_size: if given, draw group boundaries every ``group_size`` channels and also
            report the largest off-diagonal ``|value|`` inside the groups
            (``orthonets_paddle.layers.orthogonal_groups`` gives OrthoNets' groups: ``h*w``).
        ax: draw into this axes instead of a new figure.

    Returns:
        The figure (the image and its colorbar).

    Raises:
        ValueError: ``bank`` is not 3-D, or ``max_channels`` / ``group_size`` is not positive.
    """
    arr = _bank_array(bank)
    if max_channels < 1:
        raise ValueError(f"max_channels must be >= 1, got {max_channels}")
    if group_size is not None and group_size < 1:
        raise ValueError(f"group_size must be >= 1 or None, got {group_size}")
    c = arr.shape[0]
    n = min(c, max_channels)
    flat = arr[:n].reshape(n, -1)
    gram = flat @ flat.T
    off = ~np.eye(n, dtype=bool)
    max_off = float(np.abs(gram[off]).max()) if n > 1 else 0.0
    stats = f"max |off-diagonal| = {max_off:.3g}"
    if group_size is not None and n > 1:
        same_group = (np.arange(n)[:, None] // group_size) == (np.arange(n)[None, :] // group_size)
        inside = off & same_group
        max_in = float(np.abs(gram[inside]).max()) if inside.any() else 0.0
        stats = f"max |off-diagonal| = {max_off:.3g}, within groups of {group_size}: {max_in:.3g}"
    fig, ax, owned = _axes(ax, (6.8, 6))
    vmax = float(np.abs(gram).max()) or 1.0
    image = ax.imshow(gram, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    if group_size is not None:
        for b in range(group_size, n, group_size):
            ax.axhline(b - 0.5, color="black", linewidth=0.8)
            ax.axvline(b - 0.5, color="black", linewidth=0.8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    shown = f"first {n} of {c} channels" if n < c else f"{c} channels"
    ax.set_title(f"{title or 'Gram matrix of the filter bank'} ({shown})\n{stats}",
                 fontsize=_TITLE_SIZE - 1)
    ax.set_xlabel("channel", fontsize=_LABEL_SIZE)
    ax.set_ylabel("channel", fontsize=_LABEL_SIZE)
    return _finish(fig, save_path, owned)


# ------------------------------------------------------------------ attention
def plot_attention(weights: Any, title: Optional[str] = None, save_path: Optional[str] = None,
                   class_names: Optional[Sequence[str]] = None,
                   labels: Optional[Sequence[int]] = None) -> Figure:
    """Per-channel attention weights of one block on a batch.

    Top: heat map of samples x channels. Bottom: the mean over the batch per channel,
    with a ±1 std band.

    Args:
        weights: ``[batch, channels]`` excitation values in (0, 1), e.g.
            ``ChannelAttention.excitation(x)``; trailing 1x1 dims (``[b, c, 1, 1]``) are accepted.
        title: figure title (default ``"Channel attention weights"``).
        save_path: if given, the figure is written there.
        class_names: names of the classes; needs ``labels``.
        labels: class index (or name) of each sample, used as the heat map's row labels.

    Returns:
        The figure: heat map axes, mean axes and colorbar axes.

    Raises:
        ValueError: ``weights`` is not ``[batch, channels]``, ``labels`` does not have one
            entry per sample, a label is outside ``class_names``, or ``class_names`` is given
            without ``labels``.
    """
    arr = _to_numpy(weights, "weights")
    if arr.ndim == 4 and arr.shape[2:] == (1, 1):
        arr = arr[:, :, 0, 0]
    if arr.ndim != 2 or 0 in arr.shape:
        hint = " (for one sample pass weights[None])" if arr.ndim == 1 else ""
        raise ValueError(f"weights must have shape [batch, channels], got {arr.shape}{hint}")
    b, c = arr.shape
    row_labels = _row_labels(b, class_names, labels)

    fig = _new_figure((10, 6.5))
    grid = fig.add_gridspec(2, 2, width_ratios=[40, 1], height_ratios=[3, 1.3])
    ax_map = fig.add_subplot(grid[0, 0])
    ax_mean = fig.add_subplot(grid[1, 0], sharex=ax_map)
    cax = fig.add_subplot(grid[0, 1])
    # (0, 1) is the sigmoid's range; widen only if the values leave it.
    lo, hi = min(0.0, float(arr.min())), max(1.0, float(arr.max()))
    image = ax_map.imshow(arr, aspect="auto", cmap="viridis", vmin=lo, vmax=hi,
                          interpolation="nearest")
    fig.colorbar(image, cax=cax, label="weight")
    ax_map.set_ylabel("sample", fontsize=_LABEL_SIZE)
    if row_labels is not None and b <= 40:
        ax_map.set_yticks(range(b))
        ax_map.set_yticklabels(row_labels, fontsize=8 if b > 16 else 9)
    ax_map.tick_params(labelbottom=False)
    ax_map.set_title(title or f"Channel attention weights ({b} samples x {c} channels)",
                     fontsize=_TITLE_SIZE)

    channels = np.arange(c)
    mean, std = arr.mean(axis=0), arr.std(axis=0)
    ax_mean.fill_between(channels, mean - std, mean + std, color="tab:blue", alpha=0.2,
                         label="±1 std")
    ax_mean.plot(channels, mean, color="tab:blue", linewidth=1.4, label="batch mean")
    ax_mean.set_xlim(-0.5, c - 0.5)
    lo, hi = float((mean - std).min()), float((mean + std).max())
    span = (hi - lo) or 0.1
    ax_mean.set_ylim(lo - 0.1 * span, hi + 0.4 * span)  # headroom keeps the legend off the band
    ax_mean.set_xlabel("channel", fontsize=_LABEL_SIZE)
    ax_mean.set_ylabel("mean weight", fontsize=_LABEL_SIZE)
    ax_mean.grid(alpha=0.3)
    ax_mean.legend(fontsize=9, loc="upper right", ncol=2)
    return _finish(fig, save_path, True)


def _row_labels(b: int, class_names: Optional[Sequence[str]],
                labels: Optional[Sequence[Any]]) -> Optional[List[str]]:
    if labels is None:
        if class_names is not None:
            raise ValueError("class_names is given but labels is not; pass labels= with the "
                             "class index of each sample")
        return None
    if hasattr(labels, "numpy"):
        labels = labels.numpy()
    labels = list(np.asarray(labels).reshape(-1))
    if len(labels) != b:
        raise ValueError(f"labels has {len(labels)} entries but weights has {b} samples; pass "
                         f"one label per sample")
    if class_names is None:
        return [str(v) for v in labels]
    out = []
    for v in labels:
        if not isinstance(v, (int, np.integer)) or not 0 <= int(v) < len(class_names):
            raise ValueError(f"label {v!r} is not a class index in [0, {len(class_names)}) of "
                             f"class_names; pass integer class indices as labels")
        out.append(str(class_names[int(v)]))
    return out


# -------------------------------------------------------------------- tables
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
        reference_label: how the reference rows are labelled.

    Returns:
        The table, one line per row, without a trailing newline.

    Raises:
        ValueError: a row lacks ``model``, has an unknown key, or a value is not a number
            (or ``val_acc`` looks like a percentage).
    """
    lines = ["| Model | Val acc | Parameters | Throughput (images/s) |",
             "|---|---:|---:|---:|"]
    lines += [_table_row(row, i, "rows", "") for i, row in enumerate(rows)]
    if reference:
        lines.append(f"| **reference ({reference_label})** | | | |")
        lines += [_table_row(row, i, "reference", f" ({reference_label})")
                  for i, row in enumerate(reference)]
    return "\n".join(lines)


def _table_row(row: Mapping[str, Any], index: int, where: str, suffix: str) -> str:
    if not isinstance(row, Mapping):
        raise TypeError(f"{where}[{index}] must be a dict like {{'model': 'orthonet18', "
                        f"'val_acc': 0.94}}, got {type(row).__name__}")
    for key in row:
        if key not in _TABLE_KEYS:
            hint = did_you_mean(key, _TABLE_KEYS, cutoff=0.6)
            raise ValueError(f"{where}[{index}] has unknown key {key!r}; {hint}valid keys: "
                             f"{', '.join(_TABLE_KEYS)}")
    if row.get("model") in (None, ""):
        raise ValueError(f"{where}[{index}] has no 'model' name; add 'model': '<name>'")
    name = str(row["model"]).replace("|", "\\|") + suffix
    acc = _number(row, "val_acc", index, where)
    if acc is not None and not 0.0 <= acc <= 1.0:
        raise ValueError(f"{where}[{index}]['val_acc'] = {acc} is not a fraction in [0, 1]; "
                         f"if it is a percentage, divide it by 100")
    params = _number(row, "params", index, where)
    speed = _number(row, "throughput", index, where)
    cells = [name,
             "-" if acc is None else f"{acc:.4f}",
             "-" if params is None else f"{int(round(params)):,}",
             "-" if speed is None else f"{speed:.1f}"]
    return "| " + " | ".join(cells) + " |"


def _number(row: Mapping[str, Any], key: str, index: int, where: str) -> Optional[float]:
    value = row.get(key)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}[{index}][{key!r}] must be a number, got {value!r}") from None
    return None if math.isnan(value) else value


def _mean_over_seeds(series: Sequence[Sequence[float]]) -> Optional[np.ndarray]:
    """Mean over seeds of per-seed curves, cut to the shortest; None without curves."""
    curves = [np.asarray(v, dtype=np.float64) for v in series]
    if not curves:
        return None
    n = min(len(v) for v in curves)
    return np.mean([v[:n] for v in curves], axis=0)


def _label_panel(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel, fontsize=_LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=_LABEL_SIZE)
    ax.set_title(title, fontsize=_TITLE_SIZE)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot_sweep(rows: Sequence[Mapping[str, Any]], curves: Mapping[str, Mapping[str, Any]],
               baseline: Optional[str] = None, title: Optional[str] = None,
               save_path: Optional[str] = None) -> Figure:
    """An ablation sweep: accuracy per variant with 95% intervals, and mean learning curves.

    Args:
        rows (list of dict): one per variant with ``label``, ``final_mean``, ``final_lo``,
            ``final_hi``, ``best_mean``, ``best_lo``, ``best_hi`` (the sweep summary rows).
        curves (dict): ``label -> {"val_acc": [per-seed lists per epoch], "train_loss":
            [per-seed lists], "train_iter": [steps]}``.
        baseline (str, optional): label of the baseline; its mean is drawn as a dashed line.
        title (str, optional): figure title.
        save_path (str, optional): where to save the PNG.

    Returns:
        matplotlib.figure.Figure: accuracy panel, mean training loss panel and, when the runs
        have more than one epoch, a mean validation accuracy per epoch panel.
    """
    if not rows:
        raise ValueError("plot_sweep: no variant rows to plot")
    epochs = max((len(v) for c in curves.values() for v in c.get("val_acc", [])), default=0)
    ncols = 3 if epochs > 1 else 2
    fig = _new_figure((5.0 * ncols, 4.2))
    ax = fig.add_subplot(1, ncols, 1)
    # one colour per variant, the same in every panel
    colour = {str(r["label"]): f"C{i % 10}" for i, r in enumerate(rows)}
    for i, r in enumerate(rows):
        label, col = str(r["label"]), colour[str(r["label"])]
        for off, key, marker in ((-0.12, "final", "o"), (0.12, "best", "s")):
            mean = float(r[f"{key}_mean"])
            # an accuracy interval beyond [0, 1] says nothing: clip it
            lo = min(max(float(r[f"{key}_lo"]), 0.0), mean)
            hi = max(min(float(r[f"{key}_hi"]), 1.0), mean)
            err = np.nan_to_num(np.array([[mean - lo], [hi - mean]]))
            ax.errorbar([i + off], [mean], yerr=err, fmt=marker, color=col, capsize=4,
                        label=f"{label}: {key} (mean, 95% CI)")
        seeds = curves.get(r["label"], {}).get("val_acc", [])
        finals = [v[-1] for v in seeds if len(v)]
        if finals:
            ax.scatter(np.full(len(finals), i - 0.12), finals, s=10, color=col, alpha=0.5,
                       edgecolors="black", linewidths=0.3, zorder=3,
                       label=f"{label}: final, each seed")
    if baseline is not None:
        for r in rows:
            if r["label"] == baseline:
                ax.axhline(float(r["final_mean"]), ls="--", lw=0.8, color=colour[str(baseline)],
                           label=f"{baseline}: final mean (baseline)")
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels([str(r["label"]) for r in rows], rotation=20)
    ax.set_ylabel("Test accuracy", fontsize=_LABEL_SIZE)
    ax.set_title("Accuracy per variant (o final, s best)", fontsize=_TITLE_SIZE)
    # below the panel: inside, 3 entries per variant cover the intervals they explain
    ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    ax.grid(alpha=0.3)

    ax2 = fig.add_subplot(1, ncols, 2)
    for label, c in curves.items():
        mean = _mean_over_seeds(c.get("train_loss", []))
        if mean is not None:
            it = np.asarray(c.get("train_iter", np.arange(len(mean))))[:len(mean)]
            ax2.plot(it, mean, label=label, lw=1.2, color=colour.get(str(label)),
                     marker="o" if len(mean) < 3 else None)
    _label_panel(ax2, "Iteration", "Train loss (mean over seeds)", "Mean training curve")

    if ncols == 3:
        ax3 = fig.add_subplot(1, ncols, 3)
        for label, c in curves.items():
            mean = _mean_over_seeds(c.get("val_acc", []))
            if mean is not None:
                ax3.plot(np.arange(1, len(mean) + 1), mean, marker="o", label=label,
                         color=colour.get(str(label)))
        _label_panel(ax3, "Epoch", "Test accuracy (mean over seeds)", "Mean validation curve")
    if title:
        fig.suptitle(title, fontsize=_TITLE_SIZE)
    return _finish(fig, save_path, owned=True)
