"""Ablation sweeps: a grid of config overrides x seeds, one ``tools/train.py`` run each
into ``<out>/<variant>/seed<k>``, the plan and run times in ``<out>/sweep.json``, and a
summary with error bars that reads only those files (so runs submitted with ``--dry-run``
elsewhere summarize too)."""
from __future__ import annotations

import csv
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
import paddle

from ..utils.cli import sigterm_as_interrupt
from ..utils.io import write_json, write_text
from ..engine.checkpoint import RunLock, current
from ..engine.config import load_config
from ..engine.runs import count_parameters, run_config
from ..deploy.benchmark import latency_stats, time_interleaved
from ..models.registry import build_model_from_config
from ..plotting import plot_sweep
from .stats import mean_interval, t_quantile, wilcoxon_paired  # noqa: F401  (re-exported)

__all__ = ["parse_grid", "parse_seeds", "plan_sweep", "run_status", "run_sweep",
           "summarize", "t_quantile", "mean_interval", "wilcoxon_paired", "load_sweep_runs"]

TRAIN_TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools", "train.py")
# after `pip install` there is no tools/: the same command as a module
TRAIN = [TRAIN_TOOL] if os.path.isfile(TRAIN_TOOL) else ["-m", "orthonets_paddle.commands.train"]
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
if sys.argv[0] == "-m":
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.path.insert(0, os.path.dirname(sys.argv[0]))
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


# ----------------------------------------------------------------------------- the plan

def parse_grid(spec: str) -> Tuple[str, List[str]]:
    """``"Arch.squeeze=none,avg,dct"`` -> ``("Arch.squeeze", ["none", "avg", "dct"])``;
    values stay text, typed by ``tools/train.py`` like any ``-o``."""
    key, eq, values = spec.partition("=")
    key, vals = key.strip(), [v.strip() for v in values.split(",") if v.strip()]
    if not eq:
        raise ValueError(f"--grid {spec!r}: expected KEY=v1,v2,... "
                         "(e.g. --grid Arch.squeeze=none,avg,dct,random,ortho)")
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
        seeds = ([int(s) for s in text.split(",") if s.strip()] if "," in text
                 else list(range(int(text))))
    except ValueError:
        seeds = []
    if not seeds:
        raise ValueError(f"--seeds {spec!r}: expected a count (3) or a list (0,1,2)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {spec!r}: a seed is repeated")
    return seeds


def plan_sweep(config: str, grids: Sequence[str], seeds: Any, out: str,
               overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The plan: ``"variants"`` and every run, seed-major (all variants of one seed, then
    the next) so a sweep stopped early still has complete, paired seeds. Each variant's
    config is loaded here, so a bad key or value fails before any run starts."""
    if not grids:
        raise ValueError("give at least one --grid KEY=v1,v2 (e.g. Arch.squeeze=none,ortho)")
    parsed = [parse_grid(g) for g in grids]
    keys = [k for k, _ in parsed]
    if len(set(keys)) != len(keys):
        raise ValueError(f"--grid: key repeated in {keys}")
    seed_list = parse_seeds(seeds)
    variants, epochs = [], None
    for combo in itertools.product(*[vals for _, vals in parsed]):
        ovs = [f"{k}={v}" for k, v in zip(keys, combo)]
        epochs = load_config(config, list(overrides) + ovs)["Global"]["epochs"]  # validates
        safe = ["".join(c if c.isalnum() or c in "-._" else "_" for c in v) for v in combo]
        variants.append({"name": "__".join(f"{k.split('.')[-1]}-{s}" for k, s in zip(keys, safe)),
                         "overrides": ovs,
                         "label": ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, combo))})
    # Each run seed draws its own filter bank (Arch.seed = Global.seed), so intervals hold
    # the variance of drawing the filters, unless the grid or an override fixes Arch.seed.
    fixed = "Arch.seed" in keys or any(o.split("=", 1)[0].strip() == "Arch.seed"
                                       for o in overrides)
    out = os.path.abspath(out)
    runs = [{"variant": v["name"], "seed": seed, "dir": os.path.join(out, v["name"], f"seed{seed}"),
             "overrides": v["overrides"]} for seed in seed_list for v in variants]
    return {"config": os.path.abspath(config), "grid": dict(parsed), "seeds": seed_list,
            "overrides": list(overrides), "out": out, "epochs": epochs,
            "bank_seed": "fixed" if fixed else "per_seed", "variants": variants, "runs": runs}


def run_status(run_dir: str, epochs: int) -> str:
    """``"finished"`` (``final_model.pdparams`` and ``epochs`` rows in ``metrics.json``),
    ``"partial"`` (resumable from ``latest``) or ``"new"``, from the run's own files."""
    if os.path.isfile(os.path.join(run_dir, "final_model.pdparams")):
        try:
            if len(_read(os.path.join(run_dir, "metrics.json")).get("epochs", [])) >= epochs:
                return "finished"
        except (OSError, ValueError):
            pass
    if all(os.path.isfile(current(os.path.join(run_dir, f"latest.{ext}")))
           for ext in ("pdparams", "pdopt", "pdstates")):
        return "partial"
    return "new"


def run_command(plan: Dict[str, Any], run: Dict[str, Any], resume: bool = False) -> List[str]:
    """The ``tools/train.py`` command line of one run."""
    ovs = [*plan["overrides"], *run["overrides"], f"Global.seed={run['seed']}",
           f"Global.output_dir={os.path.abspath(run['dir'])}"]
    if plan.get("bank_seed") == "per_seed":
        ovs.append(f"Arch.seed={run['seed']}")
    if resume:
        ovs.append(f"Global.checkpoints={os.path.abspath(run['dir'])}")
    return [sys.executable, *TRAIN, "-c", plan["config"], *itertools.chain(
        *(("-o", ov) for ov in ovs))]


def run_sweep(plan: Dict[str, Any], jobs: int = 1, dry_run: bool = False,
              stream=None, summarize_after: bool = True) -> Dict[str, Any]:
    """Run (or with ``dry_run`` print) every unfinished run of ``plan``, ``jobs`` at once
    with ``OMP_NUM_THREADS = cores // jobs`` each, output in ``<run dir>/train.log``; a
    failed run does not stop the others, and the sweep then raises ``RuntimeError``.

    Returns:
        ``{"ran", "skipped", "failed"}`` (run folders) and ``"wall_seconds"``.
    """
    stream = stream or sys.stdout
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: must be >= 1")
    status = {r["dir"]: run_status(r["dir"], plan["epochs"]) for r in plan["runs"]}
    skipped = [d for d, s in status.items() if s == "finished"]
    todo = [(r, status[r["dir"]] == "partial") for r in plan["runs"]
            if status[r["dir"]] != "finished"]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if dry_run:
        for run, resume in todo:
            print(f"OMP_NUM_THREADS={threads} {shlex.join(run_command(plan, run, resume))}",
                  file=stream)
        for d in skipped:
            print(f"# finished, skipped: {d}", file=stream)
        return {"ran": [], "skipped": skipped, "failed": [], "wall_seconds": 0.0}
    path = os.path.join(plan["out"], "sweep.json")
    manifest, lock = dict(plan, timing={}), threading.Lock()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    failed, ran, stopping = [], [], []
    procs: Dict[str, subprocess.Popen] = {}

    def save_manifest():
        with lock:
            write_json(manifest, path)

    def one(item):
        run, resume = item
        os.makedirs(run["dir"], exist_ok=True)
        cmd = run_command(plan, run, resume)
        t0 = time.time()
        log_path = os.path.join(run["dir"], "train.log")
        if os.path.islink(log_path):  # a planted link is replaced, never written through
            os.unlink(log_path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        with open(os.open(log_path, flags, 0o666), "a", encoding="utf-8") as log:
            # a killed run may have left a progress bar without its newline
            log.write(f"{chr(10) if log.tell() else ''}$ {shlex.join(cmd)}\n")
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
            rec.update(seconds=rec["seconds"] + dt, attempts=rec["attempts"] + 1,
                       resumed=resume or rec.get("resumed", False))
            (ran if code == 0 else failed).append(run["dir"])
        save_manifest()
        word = "done" if code == 0 else f"FAILED (exit {code}; see {run['dir']}/train.log)"
        print(f"[{time.strftime('%H:%M:%S')}] {run['variant']} seed {run['seed']}"
              f"{' (resumed)' if resume else ''}: {word} in {dt:.0f} s", file=stream, flush=True)

    sweep_lock = RunLock(plan["out"], "sweep.lock", "sweep").acquire()  # before sweep.json
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        if os.path.isfile(path):  # a second sweep into the same out must be the same sweep
            old = _read(path)
            for key in ("config", "grid", "overrides", "bank_seed"):
                if old.get(key) != plan[key]:
                    raise ValueError(f"{plan['out']} holds a different sweep ({key}: "
                                     f"{old.get(key)!r} there, {plan[key]!r} now); use another --out")
            manifest["timing"] = old.get("timing", {})
        save_manifest()
        print(f"sweep: {len(plan['runs'])} runs, {len(skipped)} finished, {len(todo)} to run, "
              f"{jobs} at a time with {threads} thread(s) each; out {plan['out']}", file=stream,
              flush=True)
        t0 = time.time()
        # reliability (issue 20): SIGTERM stops the children as Ctrl-C does, and they are
        # stopped before the pool waits for its threads (which wait for the children).
        with sigterm_as_interrupt():
            list(pool.map(one, todo))
        manifest["wall_seconds"] = wall = time.time() - t0
        save_manifest()
        print(f"sweep: {len(ran)} runs in {wall:.0f} s wall, {len(failed)} failed", file=stream,
              flush=True)
        if failed:
            raise RuntimeError(f"{len(failed)} run(s) failed: {failed}; rerun the same command "
                               "to resume them")
        if summarize_after:
            summarize(plan["out"], stream=stream)
    except KeyboardInterrupt:
        # Stop the children too: their folders resume on the next sweep.
        with lock:
            stopping.append(True)
            for proc in procs.values():
                proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        sweep_lock.release()
    return {"ran": ran, "skipped": skipped, "failed": failed, "wall_seconds": wall}


# ----------------------------------------------------------------------------- reading runs

def _read(path: str, parse=json.load) -> Any:
    with open(path, encoding="utf-8") as f:
        return parse(f)


def load_sweep_runs(out: str) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The plan (``sweep.json``, plus ``"missing"``: unfinished runs' folders) and one
    record per finished run, read from the run's own files (``bank_seed``: its
    ``Arch.seed``; ``val_acc`` per epoch; ``train_loss``/``train_iter`` per logged step)."""
    path = os.path.join(out, "sweep.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --summarize needs a sweep directory "
                                "written by tools/sweep.py")
    plan = _read(path)
    runs, plan["missing"] = [], []
    for run in plan["runs"]:
        # the layout is fixed, so a sweep folder that was moved or copied still reads
        d = os.path.join(out, run["variant"], f"seed{run['seed']}")
        if run_status(d, plan["epochs"]) != "finished":
            plan["missing"].append(d)
            continue
        m = _read(os.path.join(d, "metrics.json"))
        rows = m["epochs"]
        val = [r["val_acc"] for r in rows if "val_acc" in r]
        if not val:
            raise ValueError(f"{d}/metrics.json has no val_acc: the sweep's config needs a "
                             "DataLoader.Eval section")
        runs.append({"variant": run["variant"], "seed": run["seed"], "dir": d,
                     "best_acc": float(m["best_acc"]), "final_acc": float(val[-1]),
                     "val_acc": val, "epochs": len(rows),
                     "bank_seed": run_config(d, required=True)["Arch"].get("seed"),
                     "train_loss": m["loss_record"]["train"]["loss"],
                     "train_iter": m["loss_record"]["train"]["iter"],
                     "train_images_per_sec": float(np.mean(
                         [r["train_images_per_sec"] for r in rows]))})
    return plan, runs


def _model_facts(run_dir: str, measure: bool, batch: int = 64, repeats: int = 5
                 ) -> Dict[str, Any]:
    """Trainable parameter count of the run's model and, if ``measure``, its inference
    images/s on random input of ``Global.image_shape`` (one process, current threads)."""
    cfg = run_config(run_dir, required=True)
    model = build_model_from_config(cfg["Arch"])
    facts = {"params": count_parameters(model), "infer_images_per_sec": float("nan")}
    if measure:
        model.eval()
        x = paddle.randn([batch] + list(cfg["Global"]["image_shape"]))
        with paddle.no_grad():
            times = time_interleaved({"m": lambda: model(x)}, 1, repeats)["m"]
            facts["infer_images_per_sec"] = latency_stats(times, batch)["images_per_sec"]
    return facts


# ----------------------------------------------------------------------------- the summary

SUMMARY_FIELDS = ["variant", "label", "n", "params", "best_mean", "best_std", "best_lo",
                  "best_hi", "final_mean", "final_std", "final_lo", "final_hi",
                  "diff_best_mean", "diff_best_lo", "diff_best_hi", "diff_final_mean",
                  "diff_final_lo", "diff_final_hi", "diff_n", "train_images_per_sec",
                  "infer_images_per_sec"]
RUN_FIELDS = ["variant", "seed", "best_acc", "final_acc", "epochs", "train_images_per_sec",
              "dir", "bank_seed"]
_BANK_NOTES = {
    "per_seed": "Filter banks: Arch.seed = Global.seed in every run, so each seed draws its own "
                "bank and the intervals include the variance of drawing the filters.",
    "fixed": "Filter banks: Arch.seed fixed by the sweep's --grid/-o, so runs of one variant "
             "share their bank; the intervals leave out the filter-drawing variance.",
    None: "Filter banks: this sweep predates per-seed banks; every run used the config's "
          "Arch.seed (runs.csv: bank_seed)."}


def summary_rows(labels: Dict[str, str], runs: List[Dict[str, Any]], base: str
                 ) -> List[Dict[str, Any]]:
    """Per variant (``labels``: name -> label, in order): mean / std / 95% interval of best
    and final accuracy, and the paired difference (variant - ``base``, seed by seed, over
    the seeds both have)."""
    by = {n: {r["seed"]: r for r in runs if r["variant"] == n} for n in labels}
    rows = []
    for name, rs in by.items():
        if not rs:
            continue
        row = {"variant": name, "label": labels[name], "seeds": sorted(rs),
               "train_images_per_sec": float(np.mean([r["train_images_per_sec"]
                                                      for r in rs.values()]))}
        common = sorted(set(rs) & set(by[base]))
        for key in ("best", "final"):
            field = f"{key}_acc"
            st = mean_interval([r[field] for r in rs.values()])
            d = mean_interval([rs[s][field] - by[base][s][field] for s in common])
            row.update({f"{key}_mean": st["mean"], f"{key}_std": st["std"], f"{key}_lo": st["lo"],
                        f"{key}_hi": st["hi"], "n": st["n"], f"diff_{key}_mean": d["mean"],
                        f"diff_{key}_lo": d["lo"], f"diff_{key}_hi": d["hi"], "diff_n": d["n"]})
        rows.append(row)
    return rows


def _resolve_baseline(baseline: Optional[str], labels: Dict[str, str]) -> str:
    if baseline is None:
        return next(iter(labels))
    for n, label in labels.items():
        # accept the folder name, the label, or just the grid value ("none")
        if baseline in (n, label) or n.split("-", 1)[-1] == baseline:
            return n
    raise ValueError(f"--baseline {baseline!r}: not a variant of this sweep; choose one of "
                     f"{list(labels)}")


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _ci(r: Dict[str, Any], key: str) -> str:
    lo, hi = r[f"{key}_lo"], r[f"{key}_hi"]
    return "n/a" if math.isnan(lo) else f"[{lo:.4f}, {hi:.4f}]"


def summary_markdown(rows: List[Dict[str, Any]], plan: Dict[str, Any], base: str) -> str:
    """The table as Markdown (accuracies as fractions; intervals are 95% t intervals)."""
    ovs = " ".join(f"`{o}`" for o in plan["overrides"])
    lines = [
        f"Sweep: {len(rows)} variants, seeds {plan['seeds']}, {plan['epochs']} epoch(s); "
        f"config `{os.path.basename(plan['config'])}`" + (f", overrides {ovs}" if ovs else "")
        + ".", "",
        "| variant | n | params | best acc mean ± std | best 95% CI | final acc mean ± std "
        f"| final 95% CI | final − {base} (paired) [95% CI] | train img/s | infer img/s |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = ("(baseline)" if r["label"] == base else _fmt(r["diff_final_mean"])
                if math.isnan(r["diff_final_lo"]) else
                f"{r['diff_final_mean']:.4f} {_ci(r, 'diff_final')}")
        lines.append(
            f"| {r['label']} | {r['n']} | {r['params']:,} | {_fmt(r['best_mean'])} ± "
            f"{_fmt(r['best_std'])} | {_ci(r, 'best')} | {_fmt(r['final_mean'])} ± "
            f"{_fmt(r['final_std'])} | {_ci(r, 'final')} | {diff} | "
            f"{r['train_images_per_sec']:.0f} | {_fmt(r['infer_images_per_sec'], 0)} |")
    lines += ["", "std: sample standard deviation over seeds (n-1). CI: 95% Student-t interval "
              "of the mean. Paired difference: per seed, variant minus baseline, then its mean "
              "and t interval. train img/s: mean training throughput recorded by each run "
              "(metrics.json); infer img/s: measured once per variant in the summary step "
              "(batch 64, random input, this machine at that moment).",
              "", _BANK_NOTES.get(plan.get("bank_seed"), _BANK_NOTES[None])]
    if plan.get("missing"):
        lines += ["", f"Unfinished runs left out: {len(plan['missing'])}."]
    return "\n".join(lines) + "\n"


def to_csv(rows: List[Dict[str, Any]], fields: List[str]) -> str:
    """``rows`` as CSV with columns ``fields`` (:data:`SUMMARY_FIELDS`, :data:`RUN_FIELDS`)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def summarize(out: str, baseline: Optional[str] = None, measure_throughput: bool = True,
              stream=None) -> Dict[str, Any]:
    """Write ``summary.md``, ``summary.csv``, ``runs.csv`` and ``summary.png`` into ``out``;
    return ``{"rows", "runs", "baseline", "paths"}``."""
    stream = stream or sys.stdout
    plan, runs = load_sweep_runs(out)
    if not runs:
        raise ValueError(f"{out}: no finished run to summarize yet "
                         f"({len(plan['missing'])} unfinished)")
    labels = {v["name"]: v.get("label", v["name"]) for v in plan["variants"]}
    base = _resolve_baseline(baseline, labels)
    rows = summary_rows(labels, runs, base)
    curves = {}
    for row in rows:
        rs = [r for r in runs if r["variant"] == row["variant"]]
        row.update(_model_facts(rs[0]["dir"], measure_throughput))
        curves[row["label"]] = {"val_acc": [r["val_acc"] for r in rs],
                                "train_loss": [r["train_loss"] for r in rs],
                                "train_iter": rs[0]["train_iter"]}
    paths = {k: os.path.join(out, f) for k, f in (("md", "summary.md"), ("csv", "summary.csv"),
                                                  ("runs_csv", "runs.csv"), ("png", "summary.png"))}
    markdown = summary_markdown(rows, plan, labels[base])
    write_text(markdown, paths["md"])
    write_text(to_csv(rows, SUMMARY_FIELDS), paths["csv"])
    write_text(to_csv(runs, RUN_FIELDS), paths["runs_csv"])
    plot_sweep(rows, curves, baseline=labels[base], save_path=paths["png"])
    print(markdown, file=stream)
    print("written: " + ", ".join(paths.values()), file=stream, flush=True)
    return {"rows": rows, "runs": runs, "baseline": base, "paths": paths}

