"""OrthoNet-18's cost against a plain SE-ResNet-18 (the cost of channel attention) and
ResNet-18, CIFAR stem, interleaved, as the median of repeats with their spread.

    python benchmarks/ratios.py [--repeats 5] [--threads 1] [--json ratios.json]

Sections (each in a fresh process, so one's memory and threads do not touch another's):
dygraph train step and inference at batch 32 and 128; ``to_static`` training against
dygraph; Paddle Inference and ONNX Runtime at batch 1, 8, 32, 128; peak memory of a
training step (batch 128, fresh processes, interleaved); and the authors' PyTorch eager
OrthoNet-18 (``tests/torch_reference.py``, ImageNet stem at 256 px, its
filter sizes) against our exported and dygraph OrthoNet-18 on the same input. Within a
process the models alternate (A, B, A, B, ...) and each repeat gives one ratio of adjacent
timings: the load other jobs put on a shared machine hits both alike. A speed ratio above
1 means OrthoNet-18 (or the first-named path) is faster. No figure is asserted anywhere.

SE-ResNet-18 here is timm's SEModule written plainly (``x.mean([2, 3])`` -> fc -> relu -> fc
-> sigmoid -> ``x * g``, Hu et al.'s biases) in the blocks of our ResNet-18: the target is
OrthoNet-18 >= 0.95 of its speed in every runtime.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Callable, Dict, List

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_COMMON = r"""
import json, os, sys, tempfile, time
import numpy as np, paddle
import paddle.nn.functional as F
from orthonets_paddle import build_model
paddle.set_device("cpu")
paddle.base.core.set_num_threads({threads})
def interleaved(fns, repeats, warmup=1):
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    t = {{k: [] for k in fns}}
    for _ in range(repeats):
        for k, fn in fns.items():
            a = time.perf_counter(); fn(); t[k].append(time.perf_counter() - a)
    return t
class SEModule(paddle.nn.Layer):
    # timm's SEModule, plainly: the baseline cost of a channel attention.
    def __init__(self, c, reduction=16):
        super().__init__()
        hidden = max(1, round(c / reduction))
        self.fc1, self.fc2 = paddle.nn.Linear(c, hidden), paddle.nn.Linear(hidden, c)
    def forward(self, x):
        return x * F.sigmoid(self.fc2(F.relu(self.fc1(x.mean([2, 3]))))).unsqueeze([2, 3])
MODELS = ("orthonet18", "seresnet18", "resnet18")
def model(name, **kw):
    paddle.seed(0)
    if name != "seresnet18":
        return build_model(name, 10, stem="cifar", **kw)
    m = build_model("resnet18", 10, stem="cifar", **kw)
    for blk in m.sublayers():
        if hasattr(blk, "att"):
            blk.att = SEModule(blk.bn2.weight.shape[0])
    return m
def batch(b, side=32):
    rng = np.random.default_rng(0)
    return (paddle.to_tensor(rng.standard_normal((b, 3, side, side)).astype("float32")),
            paddle.to_tensor(rng.integers(0, 10, b).astype("int64")))
def trainer(m):
    opt = paddle.optimizer.Momentum(0.01, parameters=m.parameters())
    def step(x, y):
        m.train(); loss = F.cross_entropy(m(x), y); loss.backward(); opt.step(); opt.clear_grad()
    return step
def infer(m, x):
    m.eval()
    with paddle.no_grad():
        m(x)
def emit(d):
    print(json.dumps(d))
"""

_DYGRAPH = _COMMON + r"""
x, y = batch({batch})
ms = {{n: model(n) for n in MODELS}}
steps = {{n: trainer(m) for n, m in ms.items()}}
ti = interleaved({{n: (lambda m=m: infer(m, x)) for n, m in ms.items()}}, {repeats})
tt = interleaved({{n: (lambda s=s: s(x, y)) for n, s in steps.items()}}, {repeats})
emit({{"infer": ti, "train": tt}})
"""

_STATIC = _COMMON + r"""
from orthonets_paddle.engine.static import apply_to_static
x, y = batch({batch})
steps = {{}}
for n in MODELS:
    steps[n + "/dygraph"] = trainer(model(n))
    steps[n + "/to_static"] = trainer(apply_to_static(model(n), True))
t = interleaved({{n: (lambda s=s: s(x, y)) for n, s in steps.items()}}, {repeats}, warmup=2)
emit({{"train": t}})
"""

_EXPORT = _COMMON + r"""
# The deploy layer's export and predictors: the code path tools/infer.py runs.
from orthonets_paddle.deploy.export import export_model
from orthonets_paddle.deploy.predictors import create_predictor
tmp = tempfile.mkdtemp()
runs = {{}}
xs = {{b: np.random.default_rng(0).standard_normal((b, 3, 32, 32)).astype("float32") for b in {batches}}}
for name in MODELS:
    save_dir = os.path.join(tmp, name)
    export_model(model(name), save_dir, [3, 32, 32], onnx=True, check=False)
    for rt in ("paddle", "onnx"):
        pred = create_predictor(rt, save_dir=save_dir, threads={threads})
        for b, xb in xs.items():
            runs[f"{{rt}}/{{b}}/{{name}}"] = lambda xb=xb, pred=pred: pred.predict(xb)
res = {{}}
for b in xs:  # small batches are quick: more calls per timing, so a repeat is not one op
    inner = max(1, 64 // b)
    group = {{k: (lambda f=f: [f() for _ in range(inner)]) for k, f in runs.items() if k.split("/")[1] == str(b)}}
    for k, v in interleaved(group, {repeats}, warmup=2).items():
        res[k] = [s / inner for s in v]
emit(res)
"""

_MEMORY = _COMMON + r"""
m = model({arch!r}); step = trainer(m)
x, y = batch({batch})
for _ in range(2):
    step(x, y)
with open("/proc/self/status") as f:  # this process's own peak (ru_maxrss survives exec)
    peak_kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
emit({{"peak_mb": peak_kb / 1024}})
"""

_TORCH = _COMMON + r"""
import torch
from orthonets_paddle.deploy.export import export_model
from orthonets_paddle.deploy.predictors import create_predictor
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
from torch_reference import torch_orthonet
torch.set_num_threads({threads})
b, side = {batch}, 256
xn = np.random.default_rng(0).standard_normal((b, 3, side, side)).astype("float32")
tm = torch_orthonet(18, 1000).eval()
xt = torch.from_numpy(xn)
paddle.seed(0)
pm = build_model("orthonet18", 1000, input_size=256); pm.eval()
xp = paddle.to_tensor(xn)
save_dir = os.path.join(tempfile.mkdtemp(), "o18")
export_model(pm, save_dir, [3, side, side], onnx=True, check=False)
onnx_pred = create_predictor("onnx", save_dir=save_dir, threads={threads})
def torch_infer():
    with torch.no_grad():
        tm(xt)
t = interleaved({{"torch_eager": torch_infer, "onnx": lambda: onnx_pred.predict(xn),
                 "dygraph": lambda: infer(pm, xp)}}, {repeats})
emit({{"infer": t}})
"""


def _child(code: str, timeout: float = 1200) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def paired(num: List[float], den: List[float]) -> Dict[str, float]:
    """Per-repeat ratios ``num[i] / den[i]`` of adjacent timings: median, min, max."""
    r = np.asarray(num, float) / np.asarray(den, float)
    return {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max()), "n": int(r.size)}


SECTIONS = ("dygraph32", "dygraph128", "to_static", "exported", "torch", "memory")


def run(repeats: int = 5, threads: int = 1, memory_rounds: int = 3,
        sections=SECTIONS, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """The figures of ``sections``; speed ratios are ``time(B) / time(A)`` (A's speed over B's)."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    fmt = dict(threads=threads, repeats=repeats)
    out: Dict[str, Any] = {"threads": threads, "repeats": repeats, "rows": []}

    def row(section: str, label: str, stats: Dict[str, float], target: str = "") -> None:
        out["rows"].append({"section": section, "label": label, "target": target, **stats})
        log(f"  {label}: {stats['median']:.3f} [{stats['min']:.3f}, {stats['max']:.3f}]")

    for b in (32, 128):
        if f"dygraph{b}" not in sections:
            continue
        log(f"dygraph, batch {b}")
        d = _child(_DYGRAPH.format(batch=b, **fmt))
        for kind in ("train", "infer"):
            _pair(row, "dygraph", f"{kind}", d[kind], f", b{b}")
    if "to_static" in sections:
        _to_static(fmt, row, log)
    if "exported" in sections:
        _exported(fmt, row, log)
    if "torch" in sections:
        _torch(fmt, row, log, repeats)
    if "memory" in sections:
        _memory(fmt, row, log, memory_rounds, out)
    return out


def _pair(row, section: str, kind: str, t: Dict[str, List[float]], suffix: str) -> None:
    """OrthoNet-18's speed over SE-ResNet-18's (the target) and over ResNet-18's (reported)."""
    row(section, f"{kind}, OrthoNet-18 / SE-ResNet-18 speed{suffix}",
        paired(t["seresnet18"], t["orthonet18"]), ">= 0.95")
    row(section, f"{kind}, OrthoNet-18 / ResNet-18 speed{suffix}", paired(t["resnet18"], t["orthonet18"]))


def _to_static(fmt, row, log) -> None:
    log("to_static training, batch 32")
    s = _child(_STATIC.format(batch=32, **fmt))["train"]
    row("to_static", "orthonet18: to_static / dygraph training speed, b32",
        paired(s["orthonet18/dygraph"], s["orthonet18/to_static"]))
    _pair(row, "to_static", "to_static training",
          {n: s[n + "/to_static"] for n in ("orthonet18", "seresnet18", "resnet18")}, ", b32")


def _exported(fmt, row, log) -> None:
    log("exported: Paddle Inference (oneDNN), ONNX Runtime")
    e = _child(_EXPORT.format(batches=(1, 8, 32, 128), **fmt))
    for rt in ("paddle", "onnx"):
        for b in (1, 8, 32, 128):
            _pair(row, "exported", rt,
                  {n: e[f"{rt}/{b}/{n}"] for n in ("orthonet18", "seresnet18", "resnet18")}, f", b{b}")


def _torch(fmt, row, log, repeats) -> None:
    log("the authors' PyTorch eager OrthoNet-18 (ImageNet stem, 256 px, batch 8)")
    t = _child(_TORCH.format(batch=8, **dict(fmt, repeats=max(3, repeats // 2))))["infer"]
    row("torch", "ONNX Runtime / authors' PyTorch eager speed (inference)",
        paired(t["torch_eager"], t["onnx"]), ">= 1.5")
    row("torch", "Paddle dygraph / authors' PyTorch eager speed (inference)",
        paired(t["torch_eager"], t["dygraph"]))


def _memory(fmt, row, log, memory_rounds, out) -> None:
    log(f"peak memory of a training step, batch 128, {memory_rounds} fresh processes each")
    mem: Dict[str, List[float]] = {"orthonet18": [], "seresnet18": [], "resnet18": []}
    for _ in range(memory_rounds):
        for arch in mem:
            mem[arch].append(_child(_MEMORY.format(arch=arch, batch=128, **fmt))["peak_mb"])
    out["memory_mb"] = mem
    for base in ("seresnet18", "resnet18"):
        row("memory", f"peak RSS, OrthoNet-18 / {base}, b128", paired(mem["orthonet18"], mem[base]))


def format_table(res: Dict[str, Any]) -> str:
    """Markdown: one row per figure, median of the repeats and their range."""
    lines = [f"threads per process: {res['threads']}; repeats: {res['repeats']} "
             "(median [min, max] of per-repeat ratios)", "",
             "| figure | median | range | n | target |", "|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['label']} | {r['median']:.3f} | {r['min']:.3f}-{r['max']:.3f} | "
                     f"{r['n']} | {r['target']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per figure (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process (default 1)")
    parser.add_argument("--memory-rounds", type=int, default=3, help="fresh processes per model (default 3)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--json", metavar="PATH", help="also save every timing as JSON")
    args = parser.parse_args()
    result = run(args.repeats, args.threads, args.memory_rounds, args.sections.split(","),
                 log=lambda m: print(m, flush=True))
    print(format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
