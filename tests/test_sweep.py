"""The ablation sweep: statistics against closed forms and published t tables, a tiny sweep
from the command line, its resume after a hard kill, and its CSV against the runs' files."""
import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from orthonets_paddle.experiments import sweep as sw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "orthonet18_fashionmnist.yaml")
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

# Student-t quantiles from printed tables (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
T_TABLE = {(0.975, 1): 12.706, (0.975, 2): 4.303, (0.975, 3): 3.182, (0.975, 4): 2.776,
           (0.975, 9): 2.262, (0.975, 30): 2.042, (0.95, 2): 2.920, (0.995, 5): 4.032}


@pytest.mark.parametrize("p,df", sorted(T_TABLE))
def test_t_quantile_matches_printed_table(p, df):
    assert sw.t_quantile(p, df) == pytest.approx(T_TABLE[(p, df)], abs=6e-4)


def test_t_quantile_df1_closed_form():
    # t with 1 degree of freedom is Cauchy: quantile tan(pi (p - 1/2)).
    for p in (0.6, 0.9, 0.975):
        assert sw.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-5)


def test_mean_interval_against_numpy():
    x = [0.81, 0.84, 0.79, 0.86]
    st = sw.mean_interval(x)
    mean = sum(x) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in x) / 3)
    half = 3.182446 * std / 2          # t_{0.975,3} * s / sqrt(4)
    assert st["n"] == 4
    assert st["mean"] == pytest.approx(mean, abs=1e-12)
    assert st["std"] == pytest.approx(std, abs=1e-12)
    assert st["lo"] == pytest.approx(mean - half, abs=1e-6)
    assert st["hi"] == pytest.approx(mean + half, abs=1e-6)
    one = sw.mean_interval([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["std"]) and math.isnan(one["lo"])


def test_parse_grid_and_seeds():
    assert sw.parse_grid("Arch.squeeze=none, avg,dct") == ("Arch.squeeze", ["none", "avg", "dct"])
    assert sw.parse_seeds(3) == [0, 1, 2]
    assert sw.parse_seeds("4,7") == [4, 7]
    for bad in ("Arch.squeeze", "=a,b", "Arch.squeeze=", "Arch.squeeze=a,a"):
        with pytest.raises(ValueError, match="--grid"):
            sw.parse_grid(bad)
    for bad in ("0", "x", "1,1"):
        with pytest.raises(ValueError, match="--seeds"):
            sw.parse_seeds(bad)


def test_plan_rejects_unknown_key_before_running(tmp_path):
    with pytest.raises(ValueError, match="squeeze"):
        sw.plan_sweep(CONFIG, ["Arch.squeez=none,ortho"], 2, str(tmp_path))


# ------------------------------------------------------------------ synthetic runs


def _fake_run(d, squeeze, seed, accs, epochs=None, final=True):
    """A run folder as tools/train.py leaves it (only the files the summary reads)."""
    os.makedirs(d, exist_ok=True)
    rows = [{"epoch": i + 1, "val_acc": a, "train_images_per_sec": 100.0 + seed}
            for i, a in enumerate(accs)]
    metrics = {"arch": "orthonet18", "best_acc": max(accs), "best_epoch": 1 + int(np.argmax(accs)),
               "loss_record": {"train": {"loss": [2.0, 1.0], "iter": [1, 2]},
                               "val": {"loss": [], "iter": []}},
               "acc_record": {"train": {"acc": [], "iter": []}, "val": {"acc": accs, "iter": []}},
               "epochs": rows[:epochs] if epochs is not None else rows}
    with open(os.path.join(d, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    with open(os.path.join(d, "config.yaml"), "w") as f:
        f.write("Global: {image_shape: [1, 28, 28]}\n"
                f"Arch: {{name: orthonet18, class_num: 10, stem: cifar, input_size: 28, width: 4, "
                f"in_channels: 1, squeeze: {squeeze}, seed: {seed}}}\n")
    if final:
        open(os.path.join(d, "final_model.pdparams"), "wb").close()


def _fake_sweep(tmp_path, accs, epochs=2):
    """accs: {squeeze: {seed: [acc per epoch]}} -> a sweep directory with sweep.json."""
    out = str(tmp_path / "sweep")
    variants = [{"name": f"squeeze-{s}", "overrides": [f"Arch.squeeze={s}"],
                 "label": f"squeeze={s}"} for s in accs]
    seeds = sorted({k for v in accs.values() for k in v})
    runs = []
    for seed in seeds:
        for s in accs:
            d = os.path.join(out, f"squeeze-{s}", f"seed{seed}")
            runs.append({"variant": f"squeeze-{s}", "seed": seed, "dir": d,
                         "overrides": [f"Arch.squeeze={s}"]})
            if seed in accs[s]:
                _fake_run(d, s, seed, accs[s][seed])
    plan = {"config": CONFIG, "grid": {"Arch.squeeze": list(accs)}, "seeds": seeds,
            "overrides": [], "out": out, "epochs": epochs, "variants": variants, "runs": runs}
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump(plan, f)
    return out


def _arch_seed(cmd):
    vals = [cmd[i + 1] for i, c in enumerate(cmd) if c == "-o" and cmd[i + 1].startswith("Arch.seed=")]
    return vals


def test_each_run_seed_draws_its_own_bank_unless_the_sweep_fixes_it(tmp_path):
    out = str(tmp_path / "p")
    plan = sw.plan_sweep(CONFIG, ["Arch.squeeze=random,ortho"], "0,3", out)
    assert plan["bank_seed"] == "per_seed"
    for run in plan["runs"]:
        assert _arch_seed(sw.run_command(plan, run)) == [f"Arch.seed={run['seed']}"]
    fixed_o = sw.plan_sweep(CONFIG, ["Arch.squeeze=ortho"], 2, out, ["Arch.seed=7"])
    fixed_g = sw.plan_sweep(CONFIG, ["Arch.squeeze=ortho", "Arch.seed=1,2"], 2, out)
    for p, want in ((fixed_o, ["Arch.seed=7"]), (fixed_g, None)):
        assert p["bank_seed"] == "fixed"
        for run in p["runs"]:
            got = _arch_seed(sw.run_command(p, run))
            # the fixed value comes only from -o / the grid, never from Global.seed
            assert got == (want if want else [run["overrides"][1]])
    # the summary says which: a per-seed note for this plan, a fixed one otherwise
    rows = []
    assert "each seed draws its own bank" in sw.summary_markdown(rows, plan, "x")
    assert "fixed" in sw.summary_markdown(rows, fixed_o, "x")


def test_runs_record_their_bank_seed(tmp_path):
    out = _fake_sweep(tmp_path, {"none": {0: [0.5], 4: [0.6]}, "ortho": {0: [0.55], 4: [0.62]}},
                      epochs=1)
    _, runs = sw.load_sweep_runs(out)
    assert sorted((r["variant"], r["seed"], r["bank_seed"]) for r in runs) == [
        ("squeeze-none", 0, 0), ("squeeze-none", 4, 4), ("squeeze-ortho", 0, 0),
        ("squeeze-ortho", 4, 4)]
    rows = list(csv.DictReader(io.StringIO(sw.to_csv(runs, sw.RUN_FIELDS))))
    assert [r["bank_seed"] for r in rows] == [r["seed"] for r in rows]


def _read_csv(path):
    with open(path, newline="") as f:
        return {r["variant"]: r for r in csv.DictReader(f)}


def test_summary_statistics_against_hand_computation(tmp_path):
    # best and final differ (best is epoch 1 for some runs); ortho lacks seed 2, so its
    # paired difference uses seeds 0 and 1 only.
    accs = {"none": {0: [0.70, 0.80], 1: [0.72, 0.78], 2: [0.75, 0.74]},
            "ortho": {0: [0.71, 0.83], 1: [0.79, 0.77]}}
    out = _fake_sweep(tmp_path, accs)
    res = sw.summarize(out, measure_throughput=False, stream=io.StringIO())
    rows = _read_csv(res["paths"]["csv"])
    assert list(rows) == ["squeeze-none", "squeeze-ortho"]

    none_final = np.array([0.80, 0.78, 0.74])
    none_best = np.array([0.80, 0.78, 0.75])
    r = rows["squeeze-none"]
    assert int(r["n"]) == 3
    assert float(r["final_mean"]) == pytest.approx(none_final.mean(), abs=1e-12)
    assert float(r["final_std"]) == pytest.approx(none_final.std(ddof=1), abs=1e-12)
    half = 4.302653 * none_final.std(ddof=1) / math.sqrt(3)
    assert float(r["final_lo"]) == pytest.approx(none_final.mean() - half, abs=1e-6)
    assert float(r["final_hi"]) == pytest.approx(none_final.mean() + half, abs=1e-6)
    assert float(r["best_mean"]) == pytest.approx(none_best.mean(), abs=1e-12)
    assert float(r["diff_final_mean"]) == 0.0

    o = rows["squeeze-ortho"]
    assert int(o["n"]) == 2 and int(o["diff_n"]) == 2
    d_final = np.array([0.83 - 0.80, 0.77 - 0.78])
    d_best = np.array([0.83 - 0.80, 0.79 - 0.78])
    assert float(o["diff_final_mean"]) == pytest.approx(d_final.mean(), abs=1e-12)
    half = 12.706205 * d_final.std(ddof=1) / math.sqrt(2)
    assert float(o["diff_final_lo"]) == pytest.approx(d_final.mean() - half, abs=1e-5)
    assert float(o["diff_final_hi"]) == pytest.approx(d_final.mean() + half, abs=1e-5)
    assert float(o["diff_best_mean"]) == pytest.approx(d_best.mean(), abs=1e-12)
    # the paired difference is not the difference of the unpaired means (seed 2 is unpaired)
    assert float(o["diff_final_mean"]) != pytest.approx(
        float(o["final_mean"]) - float(r["final_mean"]), abs=1e-4)
    assert float(o["train_images_per_sec"]) == pytest.approx(100.5)
    assert int(o["params"]) > int(r["params"])          # the attention MLPs add parameters
    with open(res["paths"]["md"]) as f:
        md = f.read()
    assert "(baseline)" in md and f"{d_final.mean():.4f}" in md
    assert os.path.getsize(res["paths"]["png"]) > 0

    # another baseline flips the sign of the paired difference
    res2 = sw.summarize(out, baseline="ortho", measure_throughput=False,
                        stream=io.StringIO())
    r2 = _read_csv(res2["paths"]["csv"])["squeeze-none"]
    assert float(r2["diff_final_mean"]) == pytest.approx(-d_final.mean(), abs=1e-12)
    with pytest.raises(ValueError, match="--baseline"):
        sw.summarize(out, baseline="dct", measure_throughput=False)


def test_unfinished_runs_are_left_out(tmp_path):
    accs = {"none": {0: [0.7, 0.8], 1: [0.6, 0.7]}, "ortho": {0: [0.7, 0.9], 1: [0.6, 0.8]}}
    out = _fake_sweep(tmp_path, accs)
    # ortho seed 1: metrics.json with 1 of 2 epochs and no final model -> not finished
    _fake_run(os.path.join(out, "squeeze-ortho", "seed1"), "ortho", 1, [0.6, 0.8], epochs=1,
              final=False)
    os.remove(os.path.join(out, "squeeze-ortho", "seed1", "final_model.pdparams"))
    res = sw.summarize(out, measure_throughput=False, stream=io.StringIO())
    o = _read_csv(res["paths"]["csv"])["squeeze-ortho"]
    assert int(o["n"]) == 1 and float(o["final_mean"]) == pytest.approx(0.9)
    with open(res["paths"]["md"]) as f:
        assert "Unfinished runs left out: 1" in f.read()


def test_run_status(tmp_path):
    d = str(tmp_path / "r")
    assert sw.run_status(d, 2) == "new"
    _fake_run(d, "ortho", 0, [0.5, 0.6], epochs=1, final=True)
    assert sw.run_status(d, 2) == "new"              # one of two epochs, no checkpoint
    for ext in ("pdparams", "pdopt", "pdstates"):
        open(os.path.join(d, f"latest.{ext}"), "wb").close()
    assert sw.run_status(d, 2) == "partial"
    _fake_run(d, "ortho", 0, [0.5, 0.6], final=True)
    assert sw.run_status(d, 2) == "finished"


# ------------------------------------------------------------------ the command line

TINY = ["-o", "Arch.width=4", "-o", "DataLoader.Train.dataset.num_samples=256",
        "-o", "DataLoader.Train.sampler.batch_size=64", "-o", "DataLoader.Eval.dataset.num_samples=200",
        "-o", "Global.plot=False", "-o", "Global.use_visualdl=False",
        "-o", "Global.print_batch_step=1"]


def _sweep_cmd(out, epochs, seeds=2, extra=()):
    return [sys.executable, os.path.join(ROOT, "tools", "sweep.py"), "-c", CONFIG,
            "--grid", "Arch.squeeze=none,ortho", "--seeds", str(seeds), "--out", out,
            "-o", f"Global.epochs={epochs}", *TINY, *extra]


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")


def _commands_run(run_dir):
    with open(os.path.join(run_dir, "train.log")) as f:
        return [line for line in f if line.startswith("$ ")]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(FMNIST), reason="needs dataset-fashion-mnist")
@pytest.mark.timeout(300)
def test_tiny_sweep_cli_csv_matches_metrics_and_dry_run(tmp_path):
    out = str(tmp_path / "sw")
    dry = subprocess.run(_sweep_cmd(out, 1, extra=["--dry-run"]), env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    cmds = [line for line in dry.stdout.splitlines() if "train.py" in line]
    assert len(cmds) == 4 and not os.path.exists(out)
    assert all("Global.seed=" in c and "Global.output_dir=" in c for c in cmds)
    assert sum("Arch.squeeze=ortho" in c and "Global.seed=1" in c for c in cmds) == 1

    done = subprocess.run(_sweep_cmd(out, 1, extra=["--no-throughput"]), env=_env(),
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {}
    with open(os.path.join(out, "runs.csv"), newline="") as f:
        for r in csv.DictReader(f):
            runs[(r["variant"], int(r["seed"]))] = r
    assert sorted(runs) == [(v, s) for v in ("squeeze-none", "squeeze-ortho") for s in (0, 1)]
    summary = _read_csv(os.path.join(out, "summary.csv"))
    for v in ("squeeze-none", "squeeze-ortho"):
        finals = []
        for s in (0, 1):
            d = os.path.join(out, v, f"seed{s}")
            with open(os.path.join(d, "metrics.json")) as f:
                m = json.load(f)
            with open(os.path.join(d, "config.yaml")) as f:
                cfg = yaml.safe_load(f)
            # "none" is typed as null by the override parser; the model treats both alike
            assert cfg["Global"]["seed"] == s
            assert cfg["Arch"]["squeeze"] == {"squeeze-none": None, "squeeze-ortho": "ortho"}[v]
            assert float(runs[(v, s)]["best_acc"]) == m["best_acc"]
            assert float(runs[(v, s)]["final_acc"]) == m["epochs"][-1]["val_acc"]
            finals.append(m["epochs"][-1]["val_acc"])
        assert float(summary[v]["final_mean"]) == pytest.approx(np.mean(finals), abs=1e-12)
        assert float(summary[v]["final_std"]) == pytest.approx(np.std(finals, ddof=1), abs=1e-12)
    # different seeds reached the training: their loss records differ
    logs = []
    for s in (0, 1):
        with open(os.path.join(out, "squeeze-none", f"seed{s}", "metrics.json")) as f:
            logs.append(json.load(f)["loss_record"]["train"]["loss"])
    assert logs[0] != logs[1]
    # everything finished: a second dry run has nothing to do
    again = subprocess.run(_sweep_cmd(out, 1, extra=["--dry-run"]), env=_env(),
                           capture_output=True, text=True, timeout=120)
    assert [ln for ln in again.stdout.splitlines() if "train.py" in ln] == []
    assert again.stdout.count("# finished, skipped") == 4


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(FMNIST), reason="needs dataset-fashion-mnist")
@pytest.mark.timeout(300)
def test_sweep_resumes_after_kill_without_redoing_finished_runs(tmp_path):
    out = str(tmp_path / "sw")
    cmd = _sweep_cmd(out, 2, seeds=1, extra=["--no-throughput"])
    first = os.path.join(out, "squeeze-none", "seed0")
    second = os.path.join(out, "squeeze-ortho", "seed0")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        # kill the whole process group once the second run has a checkpoint but no final model
        while time.time() < deadline:
            if os.path.exists(os.path.join(second, "latest.pdstates")) and not os.path.exists(
                    os.path.join(second, "final_model.pdparams")):
                break
            assert proc.poll() is None, "sweep ended before it could be killed"
            time.sleep(0.1)
        else:
            pytest.fail("the second run never wrote a checkpoint")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert sw.run_status(first, 2) == "finished"
    assert sw.run_status(second, 2) == "partial"
    mtime = os.path.getmtime(os.path.join(first, "final_model.pdparams"))

    dry = subprocess.run(cmd + ["--dry-run"], env=_env(), capture_output=True, text=True,
                         timeout=120)
    todo = [ln for ln in dry.stdout.splitlines() if "train.py" in ln]
    assert len(todo) == 1 and f"Global.checkpoints={os.path.abspath(second)}" in todo[0]

    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.path.getmtime(os.path.join(first, "final_model.pdparams")) == mtime
    assert len(_commands_run(first)) == 1                       # not run again
    cmds = _commands_run(second)
    assert len(cmds) == 2 and "Global.checkpoints=" in cmds[1]  # resumed, not restarted
    with open(os.path.join(second, "metrics.json")) as f:
        m = json.load(f)
    assert [r["epoch"] for r in m["epochs"]] == [1, 2]
    with open(os.path.join(second, "train.log")) as f:
        assert "resumed from" in f.read()
    assert sw.run_status(second, 2) == "finished"


def test_cli_bad_grid_is_one_line_error():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "sweep.py"), "-c", CONFIG,
                          "--grid", "Arch.squeeze", "--out", "/nonexistent/x"], env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "--grid 'Arch.squeeze': expected KEY=v1,v2" in res.stderr
    assert "Traceback" not in res.stderr


def test_committed_results_agree_with_their_runs():
    """docs/fmnist_squeeze.csv (the summary) against docs/fmnist_squeeze_runs.csv (one row per
    run), recomputed with numpy and a printed t quantile, and RESULTS.md shows those numbers."""
    docs = os.path.join(ROOT, "docs")
    summary = _read_csv(os.path.join(docs, "fmnist_squeeze.csv"))
    with open(os.path.join(docs, "fmnist_squeeze_runs.csv"), newline="") as f:
        runs = list(csv.DictReader(f))
    with open(os.path.join(docs, "RESULTS.md")) as f:
        results_md = f.read()
    names = [f"squeeze-{s}" for s in ("none", "avg", "dct", "random", "ortho")]
    assert list(summary) == names
    acc = {(r["variant"], int(r["seed"])): float(r["final_acc"]) for r in runs}
    for name in names:
        finals = np.array([acc[(name, s)] for s in (0, 1, 2)])
        base = np.array([acc[("squeeze-none", s)] for s in (0, 1, 2)])
        row = summary[name]
        assert int(row["n"]) == 3
        assert float(row["final_mean"]) == pytest.approx(finals.mean(), abs=1e-12)
        assert float(row["final_std"]) == pytest.approx(finals.std(ddof=1), abs=1e-12)
        half = 4.302653 * finals.std(ddof=1) / math.sqrt(3)
        assert float(row["final_hi"]) == pytest.approx(finals.mean() + half, abs=1e-6)
        diff = finals - base
        assert float(row["diff_final_mean"]) == pytest.approx(diff.mean(), abs=1e-12)
        if name != "squeeze-none":
            dhalf = 4.302653 * diff.std(ddof=1) / math.sqrt(3)
            assert float(row["diff_final_lo"]) == pytest.approx(diff.mean() - dhalf, abs=1e-6)
        assert f"{finals.mean():.4f} ± {finals.std(ddof=1):.4f}" in results_md
    # every planned run is there, one epoch each
    assert all(int(r["epochs"]) == 1 for r in runs) and len(runs) == 15


def test_sweep_figure_one_colour_per_variant_readable_legend_whole_intervals():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.colors import to_rgba

    from orthonets_paddle.plotting import plot_sweep
    labels = ["squeeze=none", "squeeze=random", "squeeze=ortho"]
    # intervals of 3 seeds can pass 1 (or 0): the figure draws them as the table gives them
    rows = [{"label": lab, "final_mean": m, "final_lo": m - 0.3, "final_hi": m + 0.3,
             "best_mean": m, "best_lo": -0.5, "best_hi": 1.7}
            for lab, m in zip(labels, (0.8, 0.85, 0.9))]
    curves = {lab: {"val_acc": [[0.7, 0.8], [0.75, 0.82]], "train_loss": [[2.0, 1.0], [2.1, 1.1]],
                    "train_iter": [1, 2]} for lab in labels}
    fig = plot_sweep(rows, curves, baseline="squeeze=none")
    acc, loss, val = fig.axes[:3]
    assert [t.get_text() for t in acc.get_xticklabels()] == labels  # the variants, by colour
    seen = {}
    drawn = [c for c in acc.containers if len(c[0].get_xdata())]  # legend proxies are empty
    assert len(drawn) == 2 * len(rows)
    for data_line, _, bars in drawn:
        x = float(data_line.get_xdata()[0])
        i, key = round(x), "final" if x < round(x) else "best"
        seen.setdefault(labels[i], set()).add(to_rgba(data_line.get_color()))
        (seg,) = bars[0].get_segments()
        assert seg[:, 1].min() == pytest.approx(rows[i][f"{key}_lo"])  # not clipped at 0
        assert seg[:, 1].max() == pytest.approx(rows[i][f"{key}_hi"])  # nor at 1
    for ax in (loss, val):
        for line in ax.get_lines():
            seen[line.get_label()].add(to_rgba(line.get_color()))
    assert all(len(c) == 1 for c in seen.values())          # one colour in every panel
    assert len({next(iter(c)) for c in seen.values()}) == len(labels)  # and distinct
    for ax in (acc, loss, val):
        handles, names = ax.get_legend_handles_labels()
        texts = ax.get_legend().get_texts()
        assert sorted(t.get_text() for t in texts) == sorted(names)
        assert all(not n.startswith("_") for n in names)
        assert min(t.get_fontsize() for t in texts) >= 9  # readable (it was 6 pt)
        drawn = [a.get_label() for a in ax.get_lines() + ax.collections + ax.containers
                 if not a.get_label().startswith("_")]
        assert set(drawn) <= set(names)
    # the marks spelled out, not "o final, s best"
    assert [t.get_text() for t in acc.get_legend().get_texts()] == [
        "final epoch: mean and 95% t interval", "best epoch: mean and 95% t interval",
        "final epoch, each seed", "squeeze=none: final mean (baseline)"]


# ------------------------------------------------------------------ issue 27

def test_wilcoxon_paired_against_the_exact_distribution():
    # 6 differences, all positive: the two-sided exact p is 2 * P(W+ = 21) = 2 / 2**6
    got = sw.wilcoxon_paired([0.9, 0.8, 0.7, 0.75, 0.85, 0.95], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert got["n"] == 6 and got["statistic"] == 0.0 and got["p"] == pytest.approx(2 / 64)
    # ranks of |d| 1..4 with signs + - + +: W- = 2, and P(W- <= 2) = 3/16 by enumeration
    assert sw.wilcoxon_paired([1, 0, 3, 4], [0, 2, 0, 0])["p"] == pytest.approx(2 * 3 / 16)
    assert math.isnan(sw.wilcoxon_paired([1, 2], [1, 2])["p"])


def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                if d.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, ValueError):
            pass
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _start_sweep(out, epochs):
    """A one-run sweep in the background, once its run has finished one epoch:
    (the sweep process, its run's folder, the run's pid)."""
    cmd = [sys.executable, os.path.join(ROOT, "tools", "sweep.py"), "-c", CONFIG, "--grid",
           "Arch.squeeze=ortho", "--seeds", "1", "--out", out, "-o", f"Global.epochs={epochs}",
           *TINY, "--no-throughput"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = os.path.join(out, "squeeze-ortho", "seed0")
    deadline = time.time() + 200
    while not os.path.exists(os.path.join(run, "latest.pdstates")):
        assert proc.poll() is None and time.time() < deadline, "the sweep's run never saved"
        time.sleep(0.1)
    kids = _children(proc.pid)
    assert len(kids) == 1
    return proc, cmd, run, kids[0]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(FMNIST), reason="needs dataset-fashion-mnist")
@pytest.mark.timeout(400)
def test_sigkill_of_the_sweep_stops_its_run_and_a_rerun_resumes(tmp_path):
    out = str(tmp_path / "sw")
    proc, cmd, run, child = _start_sweep(out, epochs=6)
    os.kill(proc.pid, signal.SIGKILL)  # the sweep alone: no process group kill
    proc.wait()
    deadline = time.time() + 15
    while _alive(child) and time.time() < deadline:
        time.sleep(0.1)
    stopped = not _alive(child)
    if not stopped:
        os.kill(child, signal.SIGKILL)
    assert stopped, "the run outlived its sweep"
    assert not os.path.exists(os.path.join(run, "final_model.pdparams"))  # stopped, not finished
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    cmds = _commands_run(run)
    assert len(cmds) == 2 and "Global.checkpoints=" in cmds[1]
    with open(os.path.join(run, "train.log")) as f:
        assert "resumed from" in f.read()
    assert sw.run_status(run, 6) == "finished"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(FMNIST), reason="needs dataset-fashion-mnist")
@pytest.mark.timeout(300)
def test_a_second_sweep_into_the_same_out_is_refused_and_loses_nothing(tmp_path):
    out = str(tmp_path / "sw")
    proc, cmd, run, child = _start_sweep(out, epochs=6)
    try:
        plan = open(os.path.join(out, "sweep.json"), "rb").read()
        second = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
        assert proc.poll() is None, "the first sweep was stopped"
    finally:
        proc.terminate()  # SIGTERM: the sweep stops its run as Ctrl-C does
        proc.wait(timeout=60)
    assert second.returncode == 2, second.stdout + second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another sweep" in lines[0], second.stderr
    assert len(_commands_run(run)) == 1
    with open(os.path.join(out, "sweep.json"), "rb") as f:
        assert json.loads(f.read())["runs"] == json.loads(plan)["runs"]
    assert not _alive(child)


def test_a_planted_train_log_link_is_replaced_not_written_through(tmp_path):
    out = str(tmp_path / "sw")
    # the run fails at once (AMP needs a GPU): only the log matters here
    plan = sw.plan_sweep(CONFIG, ["Arch.squeeze=ortho"], 1, out, ["AMP.use_amp=True"])
    run = plan["runs"][0]["dir"]
    os.makedirs(run)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    os.symlink(victim, os.path.join(run, "train.log"))
    with pytest.raises(RuntimeError, match="1 run\\(s\\) failed"):
        sw.run_sweep(plan, stream=io.StringIO(), summarize_after=False)
    assert victim.read_text() == "mine\n"
    assert not os.path.islink(os.path.join(run, "train.log"))
    assert "AMP.use_amp needs a GPU" in open(os.path.join(run, "train.log")).read()


_KILL_BEFORE_FINAL = """
import os, runpy, signal, sys
orig = os.replace
def replace(src, dst, *a, **k):
    if os.path.basename(str(dst)) == "final_model.pdparams":
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(src, dst, *a, **k)
os.replace = replace
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.skipif(not os.path.exists(FMNIST), reason="needs dataset-fashion-mnist")
def test_a_sweep_rerun_finishes_a_run_killed_before_its_final_model(tmp_path):
    out = str(tmp_path / "sw")
    tiny = [TINY[i + 1] for i in range(0, len(TINY), 2)]
    plan = sw.plan_sweep(CONFIG, ["Arch.squeeze=ortho"], 1, out, ["Global.epochs=1", *tiny])
    cmd = sw.run_command(plan, plan["runs"][0])
    killed = subprocess.run([cmd[0], "-c", _KILL_BEFORE_FINAL, *cmd[1:]], env=_env(),
                            capture_output=True, text=True, timeout=200)
    assert killed.returncode == -9, killed.stderr[-2000:]
    res = sw.run_sweep(plan, stream=io.StringIO())
    assert res["ran"] == [plan["runs"][0]["dir"]]
    rows = _read_csv(os.path.join(out, "summary.csv"))
    assert int(rows["squeeze-ortho"]["n"]) == 1
