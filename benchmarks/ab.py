"""Old code against new code, side by side in one run (``docs/PERFORMANCE.md``).

    git -C /work/main worktree add /work/old-7393 7393d2a     # the code before the redesign
    python benchmarks/ab.py --old /work/old-7393 --new . --json ab.json

Every figure is measured in a fresh subprocess whose ``PYTHONPATH`` is one of the two
source trees; the trees alternate (old, new, old, new, ...) so that the load other jobs put
on this shared machine hits both alike, and each figure is the median over rounds. Within
a subprocess OrthoNet-18 and ResNet-18 batches alternate too, and what is compared between
trees is the ratio OrthoNet-18 / ResNet-18, which cancels most of the machine's drift.
The child code uses ``build_model`` and each tree's own ``export_model`` and
``create_predictor`` (the deploy layer), so both trees are measured through the code path
their tools run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import numpy as np

_COMMON = r"""
import json, os, sys, tempfile, time
import numpy as np, paddle
import paddle.nn.functional as F
from orthonets_paddle import build_model
paddle.set_device("cpu")
paddle.base.core.set_num_threads({threads})
def interleaved(fns, repeats):
    t = {{k: [] for k in fns}}
    for _ in range(repeats):
        for k, fn in fns.items():
            a = time.perf_counter(); fn(); t[k].append(time.perf_counter() - a)
    return {{k: float(np.median(v)) for k, v in t.items()}}
def model(name, **kw):
    paddle.seed(0)
    return build_model(name, 10, stem="cifar", **kw)
"""

_EXPORT = _COMMON + r"""
try:  # each tree's own export and predictors (the code path its tools/infer.py runs)
    from orthonets_paddle.deploy.export import export_model
    from orthonets_paddle.deploy.predictors import create_predictor
except ImportError:  # trees from before the deploy package (e.g. 7393d2a)
    from orthonets_paddle.export import export_model
    from orthonets_paddle.predictors import create_predictor
x = np.random.default_rng(0).standard_normal(({batch}, 3, 32, 32)).astype("float32")
runs = {{}}
tmp = tempfile.mkdtemp()
for name in ("orthonet18", "resnet18"):
    save_dir = os.path.join(tmp, name)
    export_model(model(name), save_dir, [3, 32, 32], onnx=True, check=False)
    for rt in ("paddle", "onnx"):
        pred = create_predictor(rt, save_dir=save_dir, threads={threads})
        runs[name + "/" + rt] = lambda pred=pred: pred.predict(x)
for fn in runs.values():
    fn()
t = interleaved(runs, {repeats})
ips = {{k: {batch} / v for k, v in t.items()}}
print(json.dumps({{"ips": ips,
    "paddle_ratio": ips["orthonet18/paddle"] / ips["resnet18/paddle"],
    "onnx_ratio": ips["orthonet18/onnx"] / ips["resnet18/onnx"]}}))
"""

_DYGRAPH = _COMMON + r"""
x = paddle.to_tensor(np.random.default_rng(0).standard_normal(({batch}, 3, 32, 32)).astype("float32"))
y = paddle.to_tensor(np.zeros({batch}, dtype="int64"))
models = {{n: model(n) for n in ("orthonet18", "resnet18")}}
def infer(m):
    m.eval()
    with paddle.no_grad():
        m(x)
opts = {{n: paddle.optimizer.Momentum(0.01, parameters=m.parameters()) for n, m in models.items()}}
def train(n):
    m = models[n]; m.train()
    loss = F.cross_entropy(m(x), y); loss.backward(); opts[n].step(); opts[n].clear_grad()
for n in models:
    infer(models[n]); train(n)
ti = interleaved({{n: (lambda n=n: infer(models[n])) for n in ("orthonet18", "resnet18")}}, {repeats})
tt = interleaved({{n: (lambda n=n: train(n)) for n in models}}, {repeats})
print(json.dumps({{"infer_ratio": ti["resnet18"] / ti["orthonet18"],
    "train_ratio": tt["resnet18"] / tt["orthonet18"],
    "infer_ips": {{n: {batch} / v for n, v in ti.items()}},
    "train_ips": {{n: {batch} / v for n, v in tt.items()}}}}))
"""

_MEMORY = _COMMON + r"""
m = model({arch!r}, **{options!r})
m.train()
opt = paddle.optimizer.Momentum(0.01, parameters=m.parameters())
x = paddle.to_tensor(np.random.default_rng(0).standard_normal(({batch}, 3, 32, 32)).astype("float32"))
y = paddle.to_tensor(np.zeros({batch}, dtype="int64"))
for _ in range(2):
    loss = F.cross_entropy(m(x), y); loss.backward(); opt.step(); opt.clear_grad()
with open("/proc/self/status") as f:  # this process's own peak (ru_maxrss survives exec)
    peak_kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
print(json.dumps({{"peak_mb": peak_kb / 1024}}))
"""


def _child(tree: str, code: str, timeout: float = 900) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), OMP_NUM_THREADS=os.environ.get(
        "OMP_NUM_THREADS", "1"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=os.path.abspath(tree), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement in {tree} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_ab(old: str, new: str, rounds: int = 2, threads: int = 1, log=print) -> Dict[str, Any]:
    """Every figure for both trees, interleaved; medians over ``rounds``."""
    trees = {"old": old, "new": new}
    raw: Dict[str, Dict[str, List[Dict[str, Any]]]] = {t: {} for t in trees}

    def record(tree: str, key: str, code: str) -> None:
        res = _child(trees[tree], code)
        raw[tree].setdefault(key, []).append(res)
        log(f"  {tree:3s} {key}: {json.dumps(res)}")

    for r in range(rounds):
        log(f"round {r + 1}/{rounds}")
        for tree in trees:
            record(tree, "export", _EXPORT.format(threads=threads, batch=64, repeats=5))
        for tree in trees:
            record(tree, "dygraph", _DYGRAPH.format(threads=threads, batch=32, repeats=3))
        for tree in trees:
            for arch in ("orthonet18", "resnet18"):
                record(tree, f"memory/{arch}", _MEMORY.format(threads=threads, batch=64, arch=arch,
                                                              options={}))

    def med(tree, key, field):
        return float(np.median([r[field] for r in raw[tree][key]]))

    out: Dict[str, Any] = {"threads": threads, "rounds": rounds, "raw": raw}
    for tree in trees:
        out[tree] = {
            "paddle_ratio": med(tree, "export", "paddle_ratio"),
            "onnx_ratio": med(tree, "export", "onnx_ratio"),
            "dygraph_infer_ratio": med(tree, "dygraph", "infer_ratio"),
            "dygraph_train_ratio": med(tree, "dygraph", "train_ratio"),
            "memory_mb": {k.split("/", 1)[1]: med(tree, k, "peak_mb")
                          for k in raw[tree] if k.startswith("memory/")},
        }
    return out


def format_ab(res: Dict[str, Any]) -> str:
    """A Markdown table: each figure for the old and the new tree."""
    o, n = res["old"], res["new"]
    lines = [f"threads per process: {res['threads']}, rounds: {res['rounds']} (medians)", "",
             "| figure (OrthoNet-18 / ResNet-18, cifar) | old | new |", "|---|---|---|"]
    for key, label in (("paddle_ratio", "Paddle Inference throughput ratio (b64)"),
                       ("onnx_ratio", "ONNX Runtime throughput ratio (b64)"),
                       ("dygraph_infer_ratio", "dygraph inference throughput ratio (b32)"),
                       ("dygraph_train_ratio", "dygraph training-step throughput ratio (b32)")):
        lines.append(f"| {label} | {o[key]:.3f} | {n[key]:.3f} |")
    om, nm = o["memory_mb"], n["memory_mb"]
    lines.append(f"| training-step peak RSS, OrthoNet-18 (b64) | {om['orthonet18']:.0f} MB | "
                 f"{nm['orthonet18']:.0f} MB |")
    lines.append(f"| training-step peak RSS, ResNet-18 (b64) | {om['resnet18']:.0f} MB | "
                 f"{nm['resnet18']:.0f} MB |")
    lines.append(f"| memory ratio OrthoNet-18 / ResNet-18 | {om['orthonet18'] / om['resnet18']:.3f} | "
                 f"{nm['orthonet18'] / nm['resnet18']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="source tree of the old code (a git worktree)")
    parser.add_argument("--new", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="source tree of the new code (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=2, help="old/new alternations (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also save every figure as JSON")
    args = parser.parse_args()
    result = run_ab(args.old, args.new, args.rounds, args.threads, log=lambda m: print(m, flush=True))
    print(format_ab(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
