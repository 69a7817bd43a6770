"""Statistics of a sweep: Student-t quantiles and the t interval of a mean (numpy only)."""
from __future__ import annotations

import math
from typing import Dict, Sequence

import numpy as np

__all__ = ["t_quantile", "mean_interval"]


def _t_pdf(x: np.ndarray, df: float) -> np.ndarray:
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    return c * (1.0 + x * x / df) ** (-(df + 1) / 2)


def _t_cdf(x: float, df: float) -> float:
    """P(T <= x) for x >= 0 by Simpson's rule on [0, x] (the density is smooth)."""
    n = 4000
    grid = np.linspace(0.0, x, n + 1)
    y = _t_pdf(grid, df)
    h = x / n
    return 0.5 + h / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum())


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom.

    Computed from the density (bisection on its integral) so numpy is enough; accurate to
    about 1e-6 for df >= 1.
    """
    if not 0.5 < p < 1:
        raise ValueError(f"t_quantile: p must be in (0.5, 1), got {p}")
    if df < 1:
        raise ValueError(f"t_quantile: df must be >= 1, got {df}")
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:       # heavy tails at df=1: widen until bracketed
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def mean_interval(values: Sequence[float], level: float = 0.95) -> Dict[str, float]:
    """Mean, sample standard deviation (n-1) and the t interval of the mean.

    Returns:
        ``{"n", "mean", "std", "half", "lo", "hi"}``; ``std`` and the interval are NaN when
        n < 2.
    """
    x = np.asarray([v for v in values], dtype=np.float64)
    n = len(x)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "half": nan, "lo": nan, "hi": nan}
    mean = float(x.mean())
    if n < 2:
        nan = float("nan")
        return {"n": 1, "mean": mean, "std": nan, "half": nan, "lo": nan, "hi": nan}
    std = float(x.std(ddof=1))
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "half": half, "lo": mean - half, "hi": mean + half}
