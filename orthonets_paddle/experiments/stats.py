"""Sweep statistics on ``scipy.stats``: t intervals, Wilcoxon signed-rank of pairs."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
from scipy import stats

__all__ = ["t_quantile", "mean_interval", "wilcoxon_paired"]


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
