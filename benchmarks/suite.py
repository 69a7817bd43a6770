"""The project's performance suite (``python benchmarks/suite.py`` or
``tools/benchmark.py --suite``): every target of the
attention-overhead, deployment, construction, memory and data checks, each a ratio
measured side by side in one run (this machine is shared and noisy)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from typing import Any, Callable, Dict

import numpy as np

if __name__ == "__main__":  # run as a script from a checkout: use this checkout's package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from orthonets_paddle.deploy.benchmark import benchmark, time_interleaved  # noqa: E402

__all__ = ["SEED_TRAIN_TRANSFORMS", "construction_times", "peak_memory", "data_throughput",
           "measure_transform_throughput",
           "run_suite", "format_suite", "TARGETS"]

# (figure, comparison, target): what each figure must reach.
TARGETS = {
    "cifar_infer_ratio": (">=", 0.97), "cifar_train_ratio": (">=", 0.97),
    "imagenet_infer_ratio": (">=", 0.95), "onnx_over_dygraph": (">=", 5.0),
    "construction_ratio": ("<=", 1.5), "memory_ratio": ("<=", 1.1),
    "data_images_per_sec": (">=", 4000.0),
}


# The seed's CIFAR training transforms (configs/orthonet18_cifar10.yaml; a test keeps
# the two equal). A constant, because configs/ is not installed with the package.
SEED_TRAIN_TRANSFORMS = [
    {"RandomCrop": {"size": 32, "padding": 4}},
    {"ColorJitter": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2}},
    {"RandomHorizontalFlip": {"prob": 0.5}}, {"RandomRotation": {"degrees": 20}},
    {"ToTensor": {}}, {"Normalize": {"mean": [0.5] * 3, "std": [0.5] * 3}},
]


def construction_times(a: str = "orthonet152", b: str = "resnet152", repeats: int = 3
                       ) -> Dict[str, float]:
    """Median seconds to build each model (1000 classes, ImageNet stem), interleaved."""
    from orthonets_paddle.models import build_model
    build_model("resnet18")  # first-call costs (imports, allocator) out of the timing
    times = time_interleaved({a: lambda: build_model(a), b: lambda: build_model(b)},
                             warmup=0, repeats=repeats)
    return {name: float(np.median(t)) for name, t in times.items()}


_MEMORY_CHILD = """
import json, resource, sys
import numpy as np, paddle
import paddle.nn.functional as F
from orthonets_paddle import build_model
paddle.set_device("cpu")
model = build_model({arch!r}, {classes}, stem={stem!r}, **{options!r})
model.train()
opt = paddle.optimizer.Momentum(0.01, parameters=model.parameters())
x = paddle.to_tensor(np.random.default_rng(0).standard_normal(({batch}, 3, {size}, {size})).astype("float32"))
y = paddle.to_tensor(np.zeros({batch}, dtype="int64"))
for _ in range(2):
    loss = F.cross_entropy(model(x), y)
    loss.backward(); opt.step(); opt.clear_grad()
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:  # Linux keeps ru_maxrss across fork+exec (the parent's size); VmHWM is this process's
    with open("/proc/self/status") as f:
        peak_kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(json.dumps({{"peak_mb": peak_kb / 1024}}))
"""


def peak_memory(arch: str, batch: int = 128, classes: int = 10, stem: str = "cifar",
                size: int = 32, **options) -> float:
    """Peak resident memory (MB) of a fresh process doing two training steps
    (``options``: model options, e.g. ``squeeze="dct"``)."""
    code = _MEMORY_CHILD.format(arch=arch, classes=classes, stem=stem, batch=batch, size=size,
                                options=options)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement of {arch} failed: {proc.stderr[-1000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"])


def measure_transform_throughput(ops, backend: str = "cv2", n: int = 2000, image_size: int = 32,
                                 seed: int = 0) -> float:
    """Images per second of a ``transform_ops`` pipeline on random uint8 RGB images, in this
    process (``backend: pil`` hands PIL images, the conversion included in the timing)."""
    from PIL import Image
    from orthonets_paddle.data import build_transforms
    pipeline = build_transforms(ops, backend=backend)
    if pipeline is None:
        raise ValueError("measure_transform_throughput needs a non-empty ops list")
    images = np.random.default_rng(seed).integers(0, 256, (min(n, 256), image_size, image_size, 3),
                                                  dtype=np.uint8)
    wrap = Image.fromarray if backend == "pil" else (lambda a: a)
    random.seed(seed)
    np.random.seed(seed)
    for img in images[:16]:  # warm-up (imports, caches)
        pipeline(wrap(img))
    start = time.perf_counter()
    for i in range(n):
        pipeline(wrap(images[i % len(images)]))
    return n / (time.perf_counter() - start)


def data_throughput(n: int = 3000) -> Dict[str, float]:
    """Images/s of the seed's CIFAR training transforms in one process, per backend."""
    from orthonets_paddle.data import BACKENDS
    return {b: measure_transform_throughput(SEED_TRAIN_TRANSFORMS, b, n=n) for b in BACKENDS}


def run_suite(quick: bool = False, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Every figure of the performance targets, measured in this one run."""
    from orthonets_paddle.models import build_model
    reps = 3 if quick else 10
    out: Dict[str, Any] = {"quick": quick}

    log("1/5 OrthoNet-18 vs ResNet-18 (cifar, batch 128): dygraph, Paddle Inference, "
        "ONNX Runtime, training")
    cifar = {n: build_model(n, 10, stem="cifar") for n in ("orthonet18", "resnet18")}
    for m in cifar.values():
        m.eval()
    r = benchmark(cifar, [3, 32, 32], batch_size=128, warmup=2, repeats=reps, train=True,
                  train_repeats=max(3, reps // 2), log=log)
    out["cifar"] = r
    out["cifar_infer_ratio"] = r["ratios"]["dygraph"]
    out["cifar_train_ratio"] = r["ratios"]["train"]
    per = r["models"]["orthonet18"]
    out["onnx_over_dygraph"] = per["onnx"]["images_per_sec"] / per["dygraph"]["images_per_sec"]
    out["paddle_over_dygraph"] = per["paddle"]["images_per_sec"] / per["dygraph"]["images_per_sec"]

    log("2/5 OrthoNet-50 vs ResNet-50 (imagenet stem, batch 16, 224): dygraph inference")
    big = {"orthonet50": build_model("orthonet50", 1000), "resnet50": build_model("resnet50", 1000)}
    for m in big.values():
        m.eval()
    r50 = benchmark(big, [3, 224, 224], batch_size=16, warmup=2, repeats=reps,
                    backends=["dygraph"], log=log)
    out["imagenet"] = r50
    out["imagenet_infer_ratio"] = r50["ratios"]["dygraph"]

    log("3/5 construction: orthonet152 vs resnet152")
    t = construction_times(repeats=3)
    out["construction_s"] = t
    out["construction_ratio"] = t["orthonet152"] / t["resnet152"]

    log("4/5 peak memory of a training step (batch 128, cifar), one process each, x3")
    # Peak RSS varies by a few % between identical processes: median of interleaved runs.
    variants = {"orthonet18": ("orthonet18", {}), "resnet18": ("resnet18", {})}
    runs = {n: [] for n in variants}
    for _ in range(1 if quick else 3):
        for n, (arch, options) in variants.items():
            runs[n].append(peak_memory(arch, **options))
    mem = {n: float(np.median(v)) for n, v in runs.items()}
    out["memory_mb"] = mem
    out["memory_ratio"] = mem["orthonet18"] / mem["resnet18"]

    log("5/5 the seed's CIFAR training transforms, images/s in one process")
    d = data_throughput(1000 if quick else 3000)
    out["data"] = d
    out["data_images_per_sec"] = max(d.values())
    out["data_backend"] = max(d, key=d.get)
    return out


def _verdict(key: str, value: float) -> str:
    op, target = TARGETS[key]
    ok = value >= target if op == ">=" else value <= target
    return f"{'met' if ok else 'NOT met'} (target {op} {target:g})"


def format_suite(res: Dict[str, Any]) -> str:
    """The suite as a table: each figure, its ratio and whether the target is met."""
    c, i = res["cifar"], res["imagenet"]
    m = c["models"]
    lines = [f"CPU threads: {c['threads']}", "",
             "| check | measured | ratio | verdict |", "|---|---|---|---|"]

    def ips(model, kind, src=m):
        return f"{src[model][kind]['images_per_sec']:.1f}"

    lines.append(f"| inference, OrthoNet-18 / ResNet-18 (cifar, b128, dygraph) | {ips('orthonet18', 'dygraph')} "
                 f"vs {ips('resnet18', 'dygraph')} img/s | {res['cifar_infer_ratio']:.3f} | "
                 f"{_verdict('cifar_infer_ratio', res['cifar_infer_ratio'])} |")
    lines.append(f"| training, OrthoNet-18 / ResNet-18 (cifar, b128) | {ips('orthonet18', 'train')} vs "
                 f"{ips('resnet18', 'train')} img/s | {res['cifar_train_ratio']:.3f} | "
                 f"{_verdict('cifar_train_ratio', res['cifar_train_ratio'])} |")
    lines.append(f"| inference, OrthoNet-50 / ResNet-50 (224, b16, dygraph) | "
                 f"{ips('orthonet50', 'dygraph', i['models'])} vs {ips('resnet50', 'dygraph', i['models'])} "
                 f"img/s | {res['imagenet_infer_ratio']:.3f} | "
                 f"{_verdict('imagenet_infer_ratio', res['imagenet_infer_ratio'])} |")
    lines.append(f"| OrthoNet-18 deployment: dygraph / Paddle Inference / ONNX Runtime | "
                 f"{ips('orthonet18', 'dygraph')} / {ips('orthonet18', 'paddle')} / "
                 f"{ips('orthonet18', 'onnx')} img/s | ONNX {res['onnx_over_dygraph']:.1f}x, "
                 f"Paddle Inference {res['paddle_over_dygraph']:.1f}x dygraph | "
                 f"{_verdict('onnx_over_dygraph', res['onnx_over_dygraph'])} |")
    lines.append(f"| (Paddle Inference and ONNX Runtime, OrthoNet-18 / ResNet-18) | | "
                 f"{res['cifar']['ratios']['paddle']:.3f} / {res['cifar']['ratios']['onnx']:.3f} | |")
    t = res["construction_s"]
    lines.append(f"| construction, orthonet152 / resnet152 | {t['orthonet152']:.2f} vs "
                 f"{t['resnet152']:.2f} s | {res['construction_ratio']:.2f} | "
                 f"{_verdict('construction_ratio', res['construction_ratio'])} |")
    mm = res["memory_mb"]
    lines.append(f"| peak RSS of a training step, OrthoNet-18 / ResNet-18 (b128) | "
                 f"{mm['orthonet18']:.0f} vs {mm['resnet18']:.0f} MB | {res['memory_ratio']:.3f} | "
                 f"{_verdict('memory_ratio', res['memory_ratio'])} |")
    d = res["data"]
    lines.append("| seed CIFAR train transforms, one process | "
                 + " vs ".join(f"{b} {v:.0f}" for b, v in d.items()) + " img/s | "
                 f"{res['data_backend']} fastest | "
                 f"{_verdict('data_images_per_sec', res['data_images_per_sec'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", metavar="PATH", help="save the figures as JSON")
    args = parser.parse_args()
    result = run_suite(quick=args.quick, log=lambda m: print(m, flush=True))
    print(format_suite(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, default=float)
