"""docs/RESULTS.md states what the committed CSVs give: every number of the pre-registered
orthogonality test is recomputed here from the runs (not typed in)."""
import csv
import os
import re

import numpy as np
from scipy import stats

from orthonets_paddle.experiments import mean_interval, paired_from_csv

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def _stated(tag):
    text = open(os.path.join(DOCS, "RESULTS.md"), encoding="utf-8").read()
    line = re.search(rf"<!-- {tag}: (.*?) -->", text).group(1)
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split())}


def _runs(name):
    with open(os.path.join(DOCS, name), encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_primary_paired_test_is_what_the_csv_gives():
    got = paired_from_csv(os.path.join(DOCS, "fmnist_ortho_random_runs.csv"), "squeeze-ortho", "squeeze-random")
    # Oracle from the definition, independent of paired_from_csv.
    acc = {(r["variant"], int(r["seed"])): float(r["final_acc"]) for r in _runs("fmnist_ortho_random_runs.csv")}
    d = np.array([acc["squeeze-ortho", s] - acc["squeeze-random", s] for s in range(30)])
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    np.testing.assert_allclose([got["mean"], got["lo"], got["hi"]], [d.mean(), d.mean() - half, d.mean() + half])
    assert got["n"] == 30 and got["reading"] == "above 0"
    stated = _stated("primary")
    assert stated["n"] == len(d) and stated["positive"] == (d > 0).sum()
    for key, value in (("mean", d.mean()), ("sd", d.std(ddof=1)), ("lo", d.mean() - half), ("hi", d.mean() + half)):
        assert round(value, 4) == stated[key], key
    assert round(stats.wilcoxon(d).pvalue, 3) == stated["wilcoxon_p"]


def test_secondary_means_are_what_the_csvs_give():
    rows = _runs("fmnist_ortho_random_runs.csv") + _runs("fmnist_dct_avg_runs.csv")
    acc = {(r["variant"].split("-")[1], int(r["seed"])): float(r["final_acc"]) for r in rows}
    stated = _stated("secondary")
    for v in ("random", "ortho", "dct", "avg"):
        assert round(mean_interval([acc[v, s] for s in range(10)])["mean"], 4) == stated[v], v
    diff = np.mean([acc["ortho", s] - acc["dct", s] for s in range(10)])
    assert round(diff, 4) == stated["ortho_minus_dct"]


def test_paired_reading_follows_the_preregistered_rule(tmp_path):
    path = tmp_path / "runs.csv"
    for diffs, reading in (([0.01, 0.012, 0.011], "above 0"), ([-0.01, -0.012, -0.011], "below 0"),
                           ([0.001, -0.001, 0.0005, -0.0005], "no effect of 0.003 or more"),
                           ([0.02, -0.02, 0.01], "unresolved")):
        lines = ["variant,seed,final_acc"] + [f"b,{s},0.5" for s in range(len(diffs))]
        lines += [f"a,{s},{0.5 + x}" for s, x in enumerate(diffs)]
        path.write_text("\n".join(lines) + "\n")
        assert paired_from_csv(str(path), "a", "b")["reading"] == reading
