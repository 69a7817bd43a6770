"""Ablation sweeps: a grid of config overrides x seeds, one ``tools/train.py`` run each,
and a summary with error bars.

A sweep directory holds ``sweep.json`` (the plan: config, grid, seeds, overrides, the
command of every run, and the wall time of each run) and one folder per run,
``<variant>/seed<k>``, which is an ordinary training output directory. A run is
*finished* when its folder holds ``final_model.pdparams`` and a ``metrics.json`` with one
row per configured epoch; a run with ``latest.pdparams`` but not finished is resumed with
``-o Global.checkpoints=<its folder>``; anything else starts afresh.

The summary (:func:`summarize`) reads only the run folders' own files (``config.yaml``,
``metrics.json``) plus ``sweep.json`` for the variant order, so it works on a sweep whose
runs were submitted elsewhere with ``--dry-run``.
"""
from __future__ import annotations

import csv
import errno
import io
import itertools
import json
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.cli import cap_text, sigterm_as_interrupt
from ..utils.io import write_json, write_text
from ..engine.checkpoint import RunLock, current
from ..engine.config import load_config
from .stats import mean_interval, t_quantile, wilcoxon_paired  # noqa: F401  (re-exported)

__all__ = ["parse_grid", "parse_seeds", "plan_sweep", "run_status", "run_sweep",
           "summarize", "t_quantile", "mean_interval", "wilcoxon_paired", "load_sweep_runs"]

TRAIN_TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools", "train.py")
# A run dies with its sweep, however the sweep dies (SIGKILL too): it reads its stdin, a
# pipe from the sweep, in a thread, and the pipe's end stops it as SIGTERM does (a clean
# stop that keeps its last commit); if that takes over 30 s it exits anyway.
_WATCHED = """import os, runpy, signal, sys, threading, time
def watch():
    while os.read(0, 65536):  # unbuffered: no lock held at interpreter shutdown
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    os._exit(143)
threading.Thread(target=watch, daemon=True).start()
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


# ----------------------------------------------------------------------------- the plan

def parse_grid(spec: str) -> Tuple[str, List[str]]:
    """``"Arch.squeeze=none,avg,dct"`` -> ``("Arch.squeeze", ["none", "avg", "dct"])``.

    Values stay text; ``tools/train.py`` types them like any ``-o`` override.

    Raises:
        ValueError: no ``=``, an empty key, or no values.
    """
    if "=" not in spec:
        raise ValueError(f"--grid {spec!r}: expected KEY=v1,v2,... "
                         "(e.g. --grid Arch.squeeze=none,avg,dct,random,ortho)")
    key, _, values = spec.partition("=")
    key = key.strip()
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not key or not vals:
        raise ValueError(f"--grid {spec!r}: needs a key and at least one value, "
                         "e.g. Arch.squeeze=none,ortho")
    if len(set(vals)) != len(vals):
        raise ValueError(f"--grid {spec!r}: a value is repeated")
    return key, vals


def parse_seeds(spec: Any) -> List[int]:
    """``3`` or ``"3"`` -> ``[0, 1, 2]``; ``"1,5,9"`` -> ``[1, 5, 9]``."""
    text = str(spec).strip()
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            n = int(text)
            if n < 1:
                raise ValueError
            seeds = list(range(n))
    except ValueError:
        raise ValueError(f"--seeds {spec!r}: expected a count (3) or a list (0,1,2)") from None
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {spec!r}: a seed is repeated")
    return seeds


def _slug(key: str, value: str) -> str:
    name = key.split(".")[-1]
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in value)
    return f"{name}-{safe}"


def plan_sweep(config: str, grids: Sequence[str], seeds: Any, out: str,
               overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Every run of the sweep, in seed-major order (all variants of the first seed, then
    the next), so a sweep stopped early still has complete, paired seeds.

    The config with every variant's overrides is loaded once here, so a bad key or
    value fails before any run starts.

    Returns:
        ``{"config", "grid", "seeds", "overrides", "out", "epochs", "variants": [names],
        "runs": [{"variant", "seed", "dir", "overrides"}]}``.
    """
    if not grids:
        raise ValueError("give at least one --grid KEY=v1,v2 (e.g. Arch.squeeze=none,ortho)")
    parsed = [parse_grid(g) for g in grids]
    keys = [k for k, _ in parsed]
    if len(set(keys)) != len(keys):
        raise ValueError(f"--grid: key repeated in {keys}")
    seed_list = parse_seeds(seeds)
    variants = []
    epochs = None
    for combo in itertools.product(*[vals for _, vals in parsed]):
        ovs = [f"{k}={v}" for k, v in zip(keys, combo)]
        cfg = load_config(config, list(overrides) + ovs)   # validates the keys and values
        epochs = cfg["Global"]["epochs"]
        name = "__".join(_slug(k, v) for k, v in zip(keys, combo))
        variants.append({"name": name, "overrides": ovs,
                         "label": ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, combo))})
    # Each run seed draws its own filter bank (Arch.seed = Global.seed), so intervals hold
    # the variance of drawing the filters, unless the grid or an override fixes Arch.seed.
    fixed = "Arch.seed" in keys or any(o.split("=", 1)[0].strip() == "Arch.seed"
                                       for o in overrides)
    runs = []
    out = os.path.abspath(out)
    for seed in seed_list:
        for v in variants:
            runs.append({"variant": v["name"], "seed": seed,
                         "dir": os.path.join(out, v["name"], f"seed{seed}"),
                         "overrides": v["overrides"]})
    return {"config": os.path.abspath(config), "grid": dict(parsed), "seeds": seed_list,
            "overrides": list(overrides), "out": os.path.abspath(out), "epochs": epochs,
            "bank_seed": "fixed" if fixed else "per_seed", "variants": variants, "runs": runs}


def run_status(run_dir: str, epochs: int) -> str:
    """``"finished"``, ``"partial"`` (resumable from ``latest``) or ``"new"``.

    Decided from the run's own files only: a finished run has ``final_model.pdparams`` and
    a ``metrics.json`` with ``epochs`` rows.
    """
    metrics = os.path.join(run_dir, "metrics.json")
    if os.path.isfile(os.path.join(run_dir, "final_model.pdparams")) and os.path.isfile(metrics):
        try:
            with open(metrics, encoding="utf-8") as f:
                rows = json.load(f).get("epochs", [])
        except (OSError, ValueError):
            rows = []
        if len(rows) >= epochs:
            return "finished"
    if all(os.path.isfile(current(os.path.join(run_dir, f"latest.{ext}")))
           for ext in ("pdparams", "pdopt", "pdstates")):
        return "partial"
    return "new"


def run_command(plan: Dict[str, Any], run: Dict[str, Any], resume: bool = False,
                python: Optional[str] = None) -> List[str]:
    """The ``tools/train.py`` command line of one run."""
    cmd = [python or sys.executable, TRAIN_TOOL, "-c", plan["config"]]
    for ov in list(plan["overrides"]) + list(run["overrides"]) + [
            f"Global.seed={run['seed']}", f"Global.output_dir={os.path.abspath(run['dir'])}"
    ] + ([f"Arch.seed={run['seed']}"] if plan.get("bank_seed") == "per_seed" else []):
        cmd += ["-o", ov]
    if resume:
        cmd += ["-o", f"Global.checkpoints={os.path.abspath(run['dir'])}"]
    return cmd


def _manifest_path(out: str) -> str:
    return os.path.join(out, "sweep.json")


def _check_same_plan(plan: Dict[str, Any]) -> None:
    """A second sweep into the same directory must be the same sweep (or extend its seeds)."""
    path = _manifest_path(plan["out"])
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        old = json.load(f)
    for key in ("config", "grid", "overrides", "bank_seed"):
        if old.get(key) != plan[key]:
            raise ValueError(f"{plan['out']} holds a different sweep ({key}: {old.get(key)!r} "
                             f"there, {plan[key]!r} now); use another --out")


def run_sweep(plan: Dict[str, Any], jobs: int = 1, dry_run: bool = False,
              stream=None, summarize_after: bool = True) -> Dict[str, Any]:
    """Run (or with ``dry_run`` print) every unfinished run of ``plan``.

    With ``jobs`` N, N runs go at once and each gets ``OMP_NUM_THREADS = cores // N``.
    Each run's output goes to ``<run dir>/train.log``. A failed run is reported and the
    others go on; the sweep then raises ``RuntimeError`` listing the failures.

    Returns:
        ``{"ran": [...], "skipped": [...], "failed": [...], "wall_seconds": float}``.
    """
    stream = stream or sys.stdout
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: must be >= 1")
    todo = []
    skipped = []
    for run in plan["runs"]:
        status = run_status(run["dir"], plan["epochs"])
        if status == "finished":
            skipped.append(run["dir"])
        else:
            todo.append((run, status == "partial"))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if dry_run:
        for run, resume in todo:
            cmd = " ".join(shlex.quote(c) for c in run_command(plan, run, resume))
            print(f"OMP_NUM_THREADS={threads} {cmd}", file=stream)
        for d in skipped:
            print(f"# finished, skipped: {d}", file=stream)
        return {"ran": [], "skipped": skipped, "failed": [], "wall_seconds": 0.0}

    sweep_lock = RunLock(plan["out"], "sweep.lock", "sweep").acquire()  # before sweep.json
    try:
        return _run_locked(plan, todo, skipped, jobs, threads, stream, summarize_after)
    finally:
        sweep_lock.release()


def _open_log(path: str):
    """``path`` opened for appending; a link there is replaced, never written through."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        os.unlink(path)
        fd = os.open(path, flags, 0o666)
    return os.fdopen(fd, "a", encoding="utf-8")


def _run_locked(plan, todo, skipped, jobs, threads, stream, summarize_after) -> Dict[str, Any]:
    _check_same_plan(plan)
    manifest = dict(plan)
    old_timing = {}
    if os.path.isfile(_manifest_path(plan["out"])):
        with open(_manifest_path(plan["out"]), encoding="utf-8") as f:
            old_timing = json.load(f).get("timing", {})
    manifest["timing"] = dict(old_timing)
    lock = threading.Lock()

    def save_manifest():
        with lock:
            write_json(manifest, _manifest_path(plan["out"]))

    save_manifest()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    print(f"sweep: {len(plan['runs'])} runs, {len(skipped)} finished, {len(todo)} to run, "
          f"{jobs} at a time with {threads} thread(s) each; out {plan['out']}", file=stream,
          flush=True)
    failed, ran = [], []
    procs: Dict[str, subprocess.Popen] = {}
    stopping: List[bool] = []

    def one(item):
        run, resume = item
        os.makedirs(run["dir"], exist_ok=True)
        cmd = run_command(plan, run, resume)
        t0 = time.time()
        with _open_log(os.path.join(run["dir"], "train.log")) as log:
            # a killed run may have left a progress bar without its newline
            log.write(f"{chr(10) if log.tell() else ''}$ {' '.join(shlex.quote(c) for c in cmd)}\n")
            log.flush()
            with lock:
                if stopping:  # stopped while this run was queued
                    return
                # its own process group: a Ctrl-C at the terminal reaches the sweep only,
                # which stops its runs itself
                proc = subprocess.Popen([cmd[0], "-c", _WATCHED, *cmd[1:]], stdin=subprocess.PIPE,
                                        stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
                procs[run["dir"]] = proc
            code = proc.wait()
            proc.stdin.close()
        dt = time.time() - t0
        with lock:
            procs.pop(run["dir"], None)
            rec = manifest["timing"].setdefault(run["dir"], {"seconds": 0.0, "attempts": 0})
            rec["seconds"] += dt
            rec["attempts"] += 1
            rec["resumed"] = bool(resume) or rec.get("resumed", False)
            (ran if code == 0 else failed).append(run["dir"])
        save_manifest()
        word = "done" if code == 0 else f"FAILED (exit {code}; see {run['dir']}/train.log)"
        print(f"[{time.strftime('%H:%M:%S')}] {run['variant']} seed {run['seed']}"
              f"{' (resumed)' if resume else ''}: {word} in {dt:.0f} s", file=stream, flush=True)

    t0 = time.time()
    # reliability (issue 20): SIGTERM stops the children as Ctrl-C does, and they are
    # stopped before the pool waits for its threads (which wait for the children).
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        with sigterm_as_interrupt():
            list(pool.map(one, todo))
    except KeyboardInterrupt:
        # Stop the children too: their folders resume on the next sweep.
        with lock:
            stopping.append(True)
            for proc in procs.values():
                proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    wall = time.time() - t0
    manifest["wall_seconds"] = manifest.get("wall_seconds", 0.0) + wall
    save_manifest()
    print(f"sweep: {len(ran)} runs in {wall:.0f} s wall, {len(failed)} failed", file=stream,
          flush=True)
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed: {failed}; rerun the same command "
                           "to resume them")
    if summarize_after:
        summarize(plan["out"], stream=stream)
    return {"ran": ran, "skipped": skipped, "failed": failed, "wall_seconds": wall}


# ----------------------------------------------------------------------------- reading runs

def _read_json(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _run_arch(run_dir: str) -> Dict[str, Any]:
    """The ``Arch`` section the run recorded in its ``config.yaml`` (empty if none)."""
    import yaml
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return (yaml.safe_load(f) or {}).get("Arch", {}) or {}


def load_sweep_runs(out: str) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The plan (``sweep.json``) and one record per finished run, from the runs' own files.

    Each record: ``{"variant", "seed", "dir", "best_acc", "final_acc", "val_acc" (per epoch),
    "bank_seed" (the run's recorded ``Arch.seed``),
    "train_loss" (per logged step), "train_iter", "train_images_per_sec", "epochs"}``.
    Unfinished runs are left out (and counted in the plan's ``"missing"``).

    Raises:
        FileNotFoundError: ``out`` has no ``sweep.json``.
    """
    path = _manifest_path(out)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --summarize needs a sweep directory "
                                "written by tools/sweep.py")
    plan = _read_json(path)
    runs, missing = [], []
    for run in plan["runs"]:
        # the layout is fixed, so a sweep folder that was moved or copied still reads
        v = str(run["variant"])  # a folder name inside out, never a path
        if v in ("", ".", "..") or os.path.basename(v) != v or not isinstance(run["seed"], int):
            raise ValueError(f"{path}: run {cap_text(repr(run), 200)} is not one of this "
                             "package's sweep runs (the file was edited); rerun the sweep")
        d = os.path.join(out, run["variant"], f"seed{run['seed']}")
        if run_status(d, plan["epochs"]) != "finished":
            missing.append(d)
            continue
        m = _read_json(os.path.join(d, "metrics.json"))
        bank_seed = _run_arch(d).get("seed")
        rows = m["epochs"]
        val = [r["val_acc"] for r in rows if "val_acc" in r]
        if not val:
            raise ValueError(f"{d}/metrics.json has no val_acc: the sweep's config needs a "
                             "DataLoader.Eval section")
        runs.append({"variant": run["variant"], "seed": run["seed"], "dir": d,
                     "best_acc": float(m["best_acc"]), "final_acc": float(val[-1]),
                     "val_acc": val, "epochs": len(rows), "bank_seed": bank_seed,
                     "train_loss": m["loss_record"]["train"]["loss"],
                     "train_iter": m["loss_record"]["train"]["iter"],
                     "train_images_per_sec": float(np.mean(
                         [r["train_images_per_sec"] for r in rows]))})
    plan["missing"] = missing
    return plan, runs


def _model_facts(run_dir: str, measure: bool, batch: int = 64, repeats: int = 5
                 ) -> Dict[str, Any]:
    """Trainable parameter count of the run's model and, if ``measure``, its inference
    images/s on random input of ``Global.image_shape`` (one process, current threads)."""
    import paddle
    import yaml
    from ..models.registry import build_model_from_config
    from ..engine.runs import count_parameters
    with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    model = build_model_from_config(cfg["Arch"])
    facts = {"params": count_parameters(model), "infer_images_per_sec": float("nan")}
    if measure:
        model.eval()
        x = paddle.randn([batch] + list(cfg["Global"]["image_shape"]))
        with paddle.no_grad():
            model(x)                       # warm-up
            t0 = time.perf_counter()
            for _ in range(repeats):
                model(x)
            dt = time.perf_counter() - t0
        facts["infer_images_per_sec"] = batch * repeats / dt
    return facts


# ----------------------------------------------------------------------------- the summary

_CSV_FIELDS = ["variant", "label", "n", "params", "best_mean", "best_std", "best_lo", "best_hi",
               "final_mean", "final_std", "final_lo", "final_hi", "diff_best_mean",
               "diff_best_lo", "diff_best_hi", "diff_final_mean", "diff_final_lo",
               "diff_final_hi", "diff_n", "train_images_per_sec", "infer_images_per_sec"]


def summary_rows(plan: Dict[str, Any], runs: List[Dict[str, Any]], baseline: Optional[str] = None
                 ) -> List[Dict[str, Any]]:
    """Per-variant statistics: mean / std / 95% interval of best and final accuracy, and the
    paired difference (variant - baseline, seed by seed, over the seeds both have)."""
    names = [v["name"] for v in plan["variants"]]
    labels = {v["name"]: v.get("label", v["name"]) for v in plan["variants"]}
    base = _resolve_baseline(baseline, names, labels)
    by = {n: {r["seed"]: r for r in runs if r["variant"] == n} for n in names}
    rows = []
    for name in names:
        rs = by[name]
        if not rs:
            continue
        row = {"variant": name, "label": labels[name]}
        for key, field in (("best", "best_acc"), ("final", "final_acc")):
            st = mean_interval([r[field] for r in rs.values()])
            row.update({f"{key}_mean": st["mean"], f"{key}_std": st["std"],
                        f"{key}_lo": st["lo"], f"{key}_hi": st["hi"]})
            row["n"] = st["n"]
            common = sorted(set(rs) & set(by[base]))
            d = mean_interval([rs[s][field] - by[base][s][field] for s in common])
            row.update({f"diff_{key}_mean": d["mean"], f"diff_{key}_lo": d["lo"],
                        f"diff_{key}_hi": d["hi"], "diff_n": d["n"]})
        row["train_images_per_sec"] = float(np.mean([r["train_images_per_sec"]
                                                     for r in rs.values()]))
        row["seeds"] = sorted(rs)
        rows.append(row)
    return rows


def _resolve_baseline(baseline: Optional[str], names: List[str], labels: Dict[str, str]) -> str:
    if baseline is None:
        return names[0]
    for n in names:
        # accept the folder name, the label, or just the grid value ("none")
        if baseline in (n, labels[n]) or n.split("-", 1)[-1] == baseline:
            return n
    raise ValueError(f"--baseline {baseline!r}: not a variant of this sweep; choose one of "
                     f"{names}")


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pm(mean: float, lo: float, hi: float) -> str:
    if math.isnan(lo):
        return _fmt(mean)
    return f"{mean:.4f} [{lo:.4f}, {hi:.4f}]"


def summary_markdown(rows: List[Dict[str, Any]], plan: Dict[str, Any], base: str) -> str:
    """The table as Markdown (accuracies as fractions; intervals are 95% t intervals)."""
    lines = [
        f"Sweep: {len(rows)} variants, seeds {plan['seeds']}, {plan['epochs']} epoch(s); "
        f"config `{os.path.basename(plan['config'])}`"
        + (f", overrides {' '.join('`' + o + '`' for o in plan['overrides'])}"
           if plan["overrides"] else "") + ".",
        "",
        "| variant | n | params | best acc mean ± std | best 95% CI | final acc mean ± std "
        f"| final 95% CI | final − {base} (paired) [95% CI] | train img/s | infer img/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    def ci(r, k):
        return "n/a" if math.isnan(r[f"{k}_lo"]) else f"[{r[k + '_lo']:.4f}, {r[k + '_hi']:.4f}]"

    for r in rows:
        diff = ("(baseline)" if r["label"] == base
                else _pm(r["diff_final_mean"], r["diff_final_lo"], r["diff_final_hi"]))
        lines.append(
            f"| {r['label']} | {r['n']} | {r['params']:,} | {_fmt(r['best_mean'])} ± "
            f"{_fmt(r['best_std'])} | {ci(r, 'best')} | {_fmt(r['final_mean'])} ± "
            f"{_fmt(r['final_std'])} | {ci(r, 'final')} | {diff} | "
            f"{r['train_images_per_sec']:.0f} | {_fmt(r['infer_images_per_sec'], 0)} |")
    lines += ["", "std: sample standard deviation over seeds (n-1). CI: 95% Student-t interval "
              "of the mean. Paired difference: per seed, variant minus baseline, then its mean "
              "and t interval. train img/s: mean training throughput recorded by each run "
              "(metrics.json); infer img/s: measured once per variant in the summary step "
              "(batch 64, random input, this machine at that moment)."]
    lines += ["", _bank_seed_note(plan)]
    if plan.get("missing"):
        lines += ["", f"Unfinished runs left out: {len(plan['missing'])}."]
    return "\n".join(lines) + "\n"


def _bank_seed_note(plan: Dict[str, Any]) -> str:
    """One sentence on which filter-bank seed (``Arch.seed``) the runs used."""
    mode = plan.get("bank_seed")
    if mode == "per_seed":
        return ("Filter banks: Arch.seed = Global.seed in every run, so each seed draws its own "
                "bank and the intervals include the variance of drawing the filters.")
    if mode == "fixed":
        return ("Filter banks: Arch.seed fixed by the sweep's --grid/-o, so runs of one "
                "variant share their bank; the intervals leave out the filter-drawing variance.")
    return ("Filter banks: this sweep predates per-seed banks; every run used the config's "
            "Arch.seed (runs.csv: bank_seed).")


def summary_csv(rows: List[Dict[str, Any]]) -> str:
    """The table as CSV (one row per variant, fields :data:`_CSV_FIELDS`)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def runs_csv(runs: List[Dict[str, Any]]) -> str:
    """One row per run: variant, seed, best and final accuracy, epochs, folder, bank seed."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "seed", "best_acc", "final_acc", "epochs", "train_images_per_sec",
                "dir", "bank_seed"])
    for r in runs:
        w.writerow([r["variant"], r["seed"], repr(r["best_acc"]), repr(r["final_acc"]),
                    r["epochs"], repr(r["train_images_per_sec"]), r["dir"],
                    "" if r.get("bank_seed") is None else r["bank_seed"]])
    return buf.getvalue()


def summarize(out: str, baseline: Optional[str] = None, measure_throughput: bool = True,
              stream=None) -> Dict[str, Any]:
    """Write ``summary.md``, ``summary.csv``, ``runs.csv`` and ``summary.png`` into ``out``.

    Returns:
        ``{"rows", "runs", "baseline", "paths"}``.
    """
    stream = stream or sys.stdout
    plan, runs = load_sweep_runs(out)
    if not runs:
        raise ValueError(f"{out}: no finished run to summarize yet "
                         f"({len(plan['missing'])} unfinished)")
    names = [v["name"] for v in plan["variants"]]
    labels = {v["name"]: v.get("label", v["name"]) for v in plan["variants"]}
    base = _resolve_baseline(baseline, names, labels)
    rows = summary_rows(plan, runs, base)
    for row in rows:
        first = next(r for r in runs if r["variant"] == row["variant"])
        row.update(_model_facts(first["dir"], measure_throughput))
    from ..plotting import plot_sweep
    curves = {}
    for row in rows:
        rs = [r for r in runs if r["variant"] == row["variant"]]
        curves[row["label"]] = {"val_acc": [r["val_acc"] for r in rs],
                                "train_loss": [r["train_loss"] for r in rs],
                                "train_iter": rs[0]["train_iter"]}
    paths = {"md": os.path.join(out, "summary.md"), "csv": os.path.join(out, "summary.csv"),
             "runs_csv": os.path.join(out, "runs.csv"), "png": os.path.join(out, "summary.png")}
    write_text(summary_markdown(rows, plan, labels[base]), paths["md"])
    write_text(summary_csv(rows), paths["csv"])
    write_text(runs_csv(runs), paths["runs_csv"])
    plot_sweep(rows, curves, baseline=labels[base], save_path=paths["png"])
    print(summary_markdown(rows, plan, labels[base]), file=stream)
    print("written: " + ", ".join(paths.values()), file=stream, flush=True)
    return {"rows": rows, "runs": runs, "baseline": base, "paths": paths}


# ----------------------------------------------------------------------------- the CLI

def get_parser():
    """Arguments of ``tools/sweep.py``."""
    import argparse
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + "\n\n"
        "python tools/sweep.py -c configs/orthonet18_fashionmnist.yaml \\\n"
        "    --grid Arch.squeeze=none,avg,dct,random,ortho --seeds 3 --out output/sweeps/squeeze [--jobs 2]\n"
        "python tools/sweep.py --summarize output/sweeps/squeeze [--baseline squeeze-none]",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", help="YAML config of every run")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=v1,v2",
                   help="one axis of the grid, repeatable (the product of the axes is run)")
    p.add_argument("--seeds", default="3", help="a count N (seeds 0..N-1) or a list 0,1,2; "
                   "each sets Global.seed, and Arch.seed unless --grid/-o sets it (default: 3)")
    p.add_argument("--out", help="sweep directory (one folder per run); required unless --summarize")
    p.add_argument("--jobs", type=int, default=1, help="runs at once; the cores are split (default: 1)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override for every run, repeatable")
    p.add_argument("--summarize", metavar="DIR", help="only write the summary of sweep DIR")
    p.add_argument("--baseline", help="variant the paired differences are taken from "
                   "(default: the first grid value)")
    p.add_argument("--no-summary", action="store_true", help="do not summarize after the runs")
    p.add_argument("--no-throughput", action="store_true",
                   help="summary without measuring each variant's inference images/s")
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``tools/sweep.py``."""
    args = get_parser().parse_args(argv)
    if args.summarize:
        summarize(args.summarize, baseline=args.baseline,
                  measure_throughput=not args.no_throughput)
        return
    if not args.config or not args.out:
        raise ValueError("a sweep needs -c CONFIG and --out DIR (or use --summarize DIR)")
    plan = plan_sweep(args.config, args.grid, args.seeds, args.out, args.override)
    run_sweep(plan, jobs=args.jobs, dry_run=args.dry_run,
              summarize_after=not args.no_summary)
