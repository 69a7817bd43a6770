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

from ..utils.io import write_json, write_text
from .config import load_config

__all__ = ["parse_grid", "parse_seeds", "plan_sweep", "run_status", "run_sweep",
           "summarize", "t_quantile", "mean_interval", "load_sweep_runs"]

TRAIN_TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools", "train.py")


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
    runs = []
    for seed in seed_list:
        for v in variants:
            runs.append({"variant": v["name"], "seed": seed,
                         "dir": os.path.join(out, v["name"], f"seed{seed}"),
                         "overrides": v["overrides"]})
    return {"config": os.path.abspath(config), "grid": dict(parsed), "seeds": seed_list,
            "overrides": list(overrides), "out": os.path.abspath(out), "epochs": epochs,
            "variants": variants, "runs": runs}


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
    if all(os.path.isfile(os.path.join(run_dir, f"latest.{ext}"))
           for ext in ("pdparams", "pdopt", "pdstates")):
        return "partial"
    return "new"


def run_command(plan: Dict[str, Any], run: Dict[str, Any], resume: bool = False,
                python: Optional[str] = None) -> List[str]:
    """The ``tools/train.py`` command line of one run."""
    cmd = [python or sys.executable, TRAIN_TOOL, "-c", plan["config"]]
    for ov in list(plan["overrides"]) + list(run["overrides"]) + [
            f"Global.seed={run['seed']}", f"Global.output_dir={os.path.abspath(run['dir'])}"]:
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
    for key in ("config", "grid", "overrides"):
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

    _check_same_plan(plan)
    os.makedirs(plan["out"], exist_ok=True)
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

    def one(item):
        run, resume = item
        os.makedirs(run["dir"], exist_ok=True)
        cmd = run_command(plan, run, resume)
        t0 = time.time()
        with open(os.path.join(run["dir"], "train.log"), "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(shlex.quote(c) for c in cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            with lock:
                procs[run["dir"]] = proc
            code = proc.wait()
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
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, todo))
    except KeyboardInterrupt:
        # Stop the children too: their folders resume on the next sweep.
        with lock:
            for proc in procs.values():
                proc.terminate()
        raise
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


# ----------------------------------------------------------------------------- the CLI

def get_parser():
    """Arguments of ``tools/sweep.py``."""
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-c", "--config", help="YAML config of every run")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=v1,v2",
                   help="one axis of the grid, repeatable (the product of the axes is run)")
    p.add_argument("--seeds", default="3", help="a count N (seeds 0..N-1) or a list 0,1,2; "
                   "each sets Global.seed")
    p.add_argument("--out", help="sweep directory (one folder per run)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once; the cores are split")
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
