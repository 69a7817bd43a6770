"""docs/MODELS.md: trainable parameters, FLOPs and CPU latency of every registered model,
each next to the ResNet of its depth (``tools/model_table.py``).

Per depth, the ResNet and the attention models of that depth are exported and timed in one
interleaved round robin (``time_interleaved``), so a busy machine slows them alike and the
ratio to the ResNet stays meaningful.
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
from .benchmark import exported_predictors, latency_stats, time_interleaved

__all__ = ["model_flops", "measure_models", "format_table", "read_params_column", "BACKENDS"]

BACKENDS = ("paddle", "onnx")
LABELS = {"paddle": "Paddle Inference", "onnx": "ONNX Runtime"}


def model_flops(model: paddle.nn.Layer, input_size: Sequence[int]) -> int:
    """Multiply-accumulates of one image at ``input_size``, counted by forward hooks: every
    Conv2D (``k_h k_w c_in / groups`` per output value) and Linear (``in_features`` per
    output value); not BN, ReLU or the attention's squeeze (one dot product per channel,
    < 0.1%), as PaddleClas and timm tables count. (``paddle.flops`` of Paddle 3.3.1 fails on
    these models: its per-layer counters are 1-element tensors it cannot turn into ints.)"""
    total = [0]

    def hook(layer, inputs, output):  # weight [out, in/groups, kh, kw] or [in, out]
        per_output = np.prod(layer.weight.shape[1:]) if isinstance(
            layer, paddle.nn.Conv2D) else layer.weight.shape[0]
        total[0] += int(np.prod(output.shape[1:])) * int(per_output)

    hooks = [layer.register_forward_post_hook(hook) for layer in model.sublayers()
             if isinstance(layer, (paddle.nn.Conv2D, paddle.nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, *input_size]))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total[0]


def measure_models(names: Optional[Sequence[str]] = None, batch_sizes: Sequence[int] = (1, 8),
                   warmup: int = 1, repeats: int = 3, threads: int = 1, latency: bool = True,
                   log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """One row per model (default: all registered) and per depth's ResNet: ``{"model",
    "depth", "input_size", "params", "flops", "latency": {backend: {batch: mean ms}}}``;
    ``latency`` False: params and FLOPs only (no export, no timing)."""
    names = list(names or list_models())
    groups: Dict[int, List[str]] = {}  # depth -> [resnet<depth>, its other models]
    for name in names:
        depth = int(re.search(r"(\d+)$", name).group(1))
        group = groups.setdefault(depth, [f"resnet{depth}"])
        if name not in group:
            group.append(name)
    rows: List[Dict[str, Any]] = []
    for depth, group in groups.items():
        models, by_name = {}, {}
        for name in group:
            paddle.seed(0)
            model = build_model(name, num_classes=1000).eval()
            shape = list(model.pretrained_cfg["input_size"])
            by_name[name] = {"model": name, "depth": depth, "input_size": shape,
                             "params": sum(int(p.size) for p in model.parameters()
                                           if not p.stop_gradient),
                             "flops": model_flops(model, shape), "latency": {}}
            log(f"{name}: {by_name[name]['params']:,} params, "
                f"{by_name[name]['flops'] / 1e9:.2f} GFLOPs")
            models[name] = model
        rows += by_name.values()
        if not latency:
            continue
        rng = np.random.default_rng(0)
        shapes = {n: r["input_size"] for n, r in by_name.items()}
        with tempfile.TemporaryDirectory(prefix="model_table_") as tmp:
            preds = {b: exported_predictors(b, models, shapes, threads, tmp, onnx=True)
                     for b in BACKENDS}
            del models
            for backend in BACKENDS:
                for bs in batch_sizes:
                    steps = {n: (lambda p=preds[backend][n], x=rng.standard_normal(
                        (bs, *shapes[n])).astype(np.float32): p.predict(x)) for n in group}
                    for n, t in time_interleaved(steps, warmup, repeats).items():
                        by_name[n]["latency"].setdefault(backend, {})[bs] = \
                            latency_stats(t, bs)["latency_ms"]["mean"]
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
    big = max(batch_sizes)
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
        f"is the model's Paddle Inference batch-{big} latency over that ResNet's (OrthoNets run "
        "at 256 px, ResNets at 224: part of the ratio is the 31% more pixels).",
        "- The machine was shared with other jobs: treat latencies as rough; rerun the "
        "command with `--repeats 20` on an idle machine for firm figures.",
        "",
    ]
    cols = [(b, bs) for b in BACKENDS for bs in batch_sizes]
    head = ["model", "input", "params", "GFLOPs",
            *[f"{LABELS[b]} b{bs} (ms)" for b, bs in cols], "x ResNet"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ref = {r["depth"]: r["latency"].get("paddle") for r in rows
           if r["model"] == f"resnet{r['depth']}"}
    for r in rows:
        lat, base = r["latency"], ref.get(r["depth"])
        cells = [f"`{r['model']}`", "x".join(map(str, r["input_size"][1:])), f"{r['params']:,}",
                 f"{r['flops'] / 1e9:.2f}", *[f"{lat[b][bs]:.1f}" if b in lat else "-"
                                              for b, bs in cols],
                 f"{lat['paddle'][big] / base[big]:.2f}" if lat and base else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_params_column(text: str) -> Dict[str, int]:
    """``{model: params}`` from a MODELS.md table (for the test against ``build_model``)."""
    rows = re.findall(r"^\|\s*`([a-z_0-9]+)`\s*\|[^|]*\|\s*([\d,]+)\s*\|", text, re.M)
    return {name: int(params.replace(",", "")) for name, params in rows}
