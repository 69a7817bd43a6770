"""Sweep statistics on ``scipy.stats``: t intervals, Wilcoxon signed-rank of pairs."""
from __future__ import annotations

import csv

from typing import Dict, Sequence

import numpy as np
from scipy import stats

__all__ = ["t_quantile", "mean_interval", "wilcoxon_paired", "paired_from_csv"]


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    return float(stats.t.ppf(p, df))


def mean_interval(values: Sequence[float], level: float = 0.95) -> Dict[str, float]:
    """``{"n", "mean", "std" (n-1), "half", "lo", "hi"}``: the mean's t interval (NaN if n < 2)."""
    x, nan = np.asarray(list(values), dtype=np.float64), float("nan")
    n, mean, std = len(x), float(x.mean()) if len(x) else nan, float(x.std(ddof=1)) if len(x) > 1 else nan
    half = t_quantile(0.5 + level / 2, n - 1) * std / n ** 0.5 if n > 1 else nan
    return {"n": n, "mean": mean, "std": std, "half": half, "lo": mean - half, "hi": mean + half}


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> Dict[str, float]:
    """Two-sided Wilcoxon signed-rank test of ``a - b`` (paired by position):
    ``{"n", "statistic", "p"}``, NaN when every difference is zero."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    w, p = stats.wilcoxon(d) if np.any(d) else (np.nan, np.nan)
    return {"n": len(d), "statistic": float(w), "p": float(p)}


def paired_from_csv(path: str, a: str, b: str, metric: str = "final_acc",
                    margin: float = 0.003) -> Dict[str, object]:
    """The pre-registered paired test of a sweep's ``runs.csv``: ``d = a - b`` per seed both
    variants have, its t interval, the Wilcoxon check, and the reading (docs/RESULTS.md):
    ``above 0``, ``below 0``, ``no effect of margin or more`` or ``unresolved``."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    by = {v: {int(r["seed"]): float(r[metric]) for r in rows if r["variant"] == v} for v in (a, b)}
    seeds = sorted(set(by[a]) & set(by[b]))
    d = [by[a][s] - by[b][s] for s in seeds]
    ci = mean_interval(d)
    if ci["lo"] > 0:
        reading = "above 0"
    elif ci["hi"] < 0:
        reading = "below 0"
    elif -margin <= ci["lo"] and ci["hi"] <= margin:
        reading = f"no effect of {margin} or more"
    else:
        reading = "unresolved"
    return {"seeds": seeds, "diffs": d, **ci, "wilcoxon": wilcoxon_paired(
        [by[a][s] for s in seeds], [by[b][s] for s in seeds]), "reading": reading}
