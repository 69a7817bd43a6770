"""Experiments above the training engine: ablation sweeps (one ``tools/train.py`` run per
grid point and seed) and their statistics. This package imports ``engine``; nothing in
``engine`` imports it."""
from .stats import mean_interval, paired_from_csv, t_quantile, wilcoxon_paired
from .sweep import load_sweep_runs, plan_sweep, run_sweep, summarize

__all__ = ["mean_interval", "paired_from_csv", "t_quantile", "wilcoxon_paired", "plan_sweep", "run_sweep", "load_sweep_runs",
           "summarize"]
