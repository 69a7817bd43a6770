"""docs/MODELS.md: trainable parameters, FLOPs and CPU latency of every registered model,
each next to the ResNet of its depth (``tools/model_table.py``).

Per depth, the ResNet and the attention models of that depth are exported (Paddle
Inference and ONNX) and timed in one interleaved round robin (``time_interleaved``), so
a busy machine slows them alike and the ratio to the ResNet stays meaningful. FLOPs are
our own count (``model_flops``): the multiply-accumulates of the Conv2D and Linear layers
at the model's ``pretrained_cfg`` input size (as PaddleClas and timm tables report them),
not the attention's squeeze (one dot product per channel: below 0.1% here), BN or ReLU.
"""
from __future__ import annotations

import datetime
import os
import platform
import re
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import paddle

from ..models import build_model, list_models
from .benchmark import latency_stats, time_interleaved
from .export import export_model
from .predictors import create_predictor

__all__ = ["trainable_params", "model_flops", "measure_models", "format_table",
           "read_params_column", "BACKENDS"]

BACKENDS = ("paddle", "onnx")
_DEPTH = re.compile(r"(\d+)$")


def trainable_params(model: paddle.nn.Layer) -> int:
    """Parameters with gradients (filter banks are buffers, not counted)."""
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def model_flops(model: paddle.nn.Layer, input_size: Sequence[int]) -> int:
    """Multiply-accumulates of one image: every Conv2D (``k_h k_w c_in / groups`` per output
    value) and Linear (``in_features`` per output value), counted by forward hooks at
    ``[1, *input_size]``. (``paddle.flops`` of Paddle 3.3.1 fails on these models: its
    per-layer counters are 1-element tensors it cannot turn into ints.)"""
    total = [0]

    def conv_hook(layer, inputs, output):
        kh, kw = layer.weight.shape[2:]
        total[0] += int(np.prod(output.shape[1:])) * kh * kw * layer.weight.shape[1]

    def linear_hook(layer, inputs, output):
        total[0] += int(np.prod(output.shape[:-1])) * int(np.prod(layer.weight.shape))

    hooks = []
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.Conv2D):
            hooks.append(layer.register_forward_post_hook(conv_hook))
        elif isinstance(layer, paddle.nn.Linear):
            hooks.append(layer.register_forward_post_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, *input_size]))
    finally:
        for h in hooks:
            h.remove()
        model.train() if was_training else model.eval()
    return total[0]


def _groups(names: Sequence[str]) -> Dict[int, List[str]]:
    """Depth -> [resnet<depth>, the other named models of that depth]."""
    out: Dict[int, List[str]] = {}
    for name in names:
        depth = int(_DEPTH.search(name).group(1))
        out.setdefault(depth, [f"resnet{depth}"])
        if name not in out[depth]:
            out[depth].append(name)
    return out


def measure_models(names: Optional[Sequence[str]] = None, batch_sizes: Sequence[int] = (1, 8),
                   warmup: int = 1, repeats: int = 3, threads: int = 1, latency: bool = True,
                   log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """One row per model (and the ResNet of each depth): name, input size, params, FLOPs
    and ``latency[backend][batch] = mean ms`` (empty when ``latency`` is False).

    Args:
        names: registered models (default: all).
        batch_sizes: batches timed per backend.
        warmup, repeats: untimed and timed calls per model and batch.
        threads: CPU threads of each predictor.
        latency: export and time (False: params and FLOPs only).
        log: progress messages.
    """
    names = list(names or list_models())
    rows: List[Dict[str, Any]] = []
    for depth, group in _groups(names).items():
        preds: Dict[str, Dict[str, Any]] = {b: {} for b in BACKENDS}
        shapes: Dict[str, List[int]] = {}
        with tempfile.TemporaryDirectory(prefix="model_table_") as tmp:
            for name in group:
                paddle.seed(0)
                model = build_model(name, num_classes=1000)
                model.eval()
                shape = list(model.pretrained_cfg["input_size"])
                shapes[name] = shape
                row = {"model": name, "depth": depth, "input_size": shape,
                       "params": trainable_params(model), "flops": model_flops(model, shape),
                       "latency": {}}
                rows.append(row)
                log(f"{name}: {row['params']:,} params, {row['flops'] / 1e9:.2f} GFLOPs")
                if latency:
                    out = os.path.join(tmp, name)
                    export_model(model, out, shape, onnx=True, check=False)
                    for backend in BACKENDS:
                        preds[backend][name] = create_predictor(backend, save_dir=out,
                                                                threads=threads)
                del model
            if not latency:
                continue
            by_name = {r["model"]: r for r in rows if r["depth"] == depth}
            rng = np.random.default_rng(0)
            for backend in BACKENDS:
                for bs in batch_sizes:
                    batches = {n: rng.standard_normal((bs, *shapes[n])).astype(np.float32)
                               for n in group}
                    steps = {n: (lambda p=preds[backend][n], x=batches[n]: p.predict(x))
                             for n in group}
                    times = time_interleaved(steps, warmup, repeats)
                    for n in group:
                        ms = latency_stats(times[n], bs)["latency_ms"]["mean"]
                        by_name[n]["latency"].setdefault(backend, {})[bs] = ms
                    log(f"depth {depth} {backend} batch {bs}: " + ", ".join(
                        f"{n} {by_name[n]['latency'][backend][bs]:.1f} ms" for n in group))
            del preds
    order = {n: i for i, n in enumerate(names)}
    # Registered order, each depth's ResNet first when it was not asked for itself.
    rows.sort(key=lambda r: (r["depth"], r["model"] not in order, order.get(r["model"], -1)))
    return rows


def format_table(rows: Sequence[Dict[str, Any]], command: str, threads: int, warmup: int,
                 repeats: int, batch_sizes: Sequence[int], seconds: float) -> str:
    """docs/MODELS.md's text: how it was made, then the table."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    try:
        import onnxruntime  # an optional dependency: its version, when installed
        ort = onnxruntime.__version__
    except ImportError:
        ort = "not installed"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Models: parameters, FLOPs and CPU latency",
        "",
        "Generated by one command (do not edit by hand):",
        "",
        f"    {command}",
        "",
        f"Made {now} on {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}),"
        f" load average {load} (1/5/15 min) at the end; Paddle {paddle.__version__}, "
        f"ONNX Runtime {ort}; {threads} thread(s) per predictor, {warmup} warm-up + {repeats} "
        f"timed calls per batch; {seconds / 60:.1f} min in all.",
        "",
        "- **params**: trainable parameters at 1000 classes (`build_model(name)`; the filter "
        "banks are buffers, not parameters).",
        "- **GFLOPs**: our own count (`deploy.model_table.model_flops`; `paddle.flops` of "
        "Paddle 3.3.1 fails on these models): multiply-accumulates of every Conv2D and "
        "Linear for one image at the model's `pretrained_cfg` input size, as PaddleClas and "
        "timm report them (resnet50 at 224: 4.1). BN, ReLU and the attention's squeeze (one "
        "dot product per channel, < 0.1%) are not counted.",
        "- **latency**: mean ms per batch of random images at that input size, Paddle "
        "Inference (`inference.json`) and ONNX Runtime (`inference.onnx`) exports. Each "
        "depth's models and its ResNet were timed in one interleaved round robin; **x ResNet** "
        "is the model's Paddle Inference batch-"
        f"{max(batch_sizes)} latency over that ResNet's (OrthoNets run at 256 px, ResNets at "
        "224: part of the ratio is the 31% more pixels).",
        "- The machine was shared with other jobs: treat latencies as rough; rerun the "
        "command with `--repeats 20` on an idle machine for firm figures.",
        "",
    ]
    bs_cols = [(b, bs) for b in BACKENDS for bs in batch_sizes]
    label = {"paddle": "Paddle Inference", "onnx": "ONNX Runtime"}
    head = ["model", "input", "params", "GFLOPs",
            *[f"{label[b]} b{bs} (ms)" for b, bs in bs_cols], "x ResNet"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ref = {r["depth"]: r for r in rows if r["model"] == f"resnet{r['depth']}"}
    for r in rows:
        lat = r["latency"]
        cells = [f"`{r['model']}`", "x".join(map(str, r["input_size"][1:])), f"{r['params']:,}",
                 f"{r['flops'] / 1e9:.2f}"]
        cells += [f"{lat[b][bs]:.1f}" if b in lat else "-" for b, bs in bs_cols]
        base = ref.get(r["depth"], {}).get("latency", {}).get("paddle", {})
        big = max(batch_sizes)
        cells.append(f"{lat['paddle'][big] / base[big]:.2f}" if lat and base else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_params_column(text: str) -> Dict[str, int]:
    """``{model: params}`` from a MODELS.md table (for the test against ``build_model``)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`([a-z_0-9]+)`\s*\|[^|]*\|\s*([\d,]+)\s*\|", line)
        if m:
            out[m.group(1)] = int(m.group(2).replace(",", ""))
    return out
