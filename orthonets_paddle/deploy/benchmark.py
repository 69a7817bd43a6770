"""Throughput and latency of models on the three runtimes, and training speed.

``benchmark(models, ...)`` times several models on the same batch, interleaving their
repeats (A, B, A, B, ...) so a machine that gets busier or cooler during the run affects
every model alike, which matters for a ratio such as OrthoNet-18 / ResNet-18.
Figures are wall-clock: a busy machine gives lower throughput for all.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

from ..utils.io import write_json
from ..utils.schema import NON_NEGATIVE_INT, POSITIVE_INT
from ..utils.threads import cpu_threads, set_paddle_threads
from .export import check_image_shape, export_model
from .predictors import BACKENDS, InferenceOptions, create_predictor, inference_files

__all__ = ["latency_stats", "time_interleaved", "make_train_step", "exported_predictors",
           "benchmark_export",
           "benchmark", "format_benchmark", "save_benchmark", "BACKEND_LABELS"]

BACKEND_LABELS = {"dygraph": "dygraph", "paddle": "Paddle Inference", "onnx": "ONNX Runtime",
                  "train": "training"}
save_benchmark = write_json  # RUN_DIR/benchmark.json fills tools/compare.py's throughput column


def latency_stats(times: Sequence[float], batch_size: int) -> Dict[str, Any]:
    """Per-batch times (seconds) -> images/s (from the mean) and latency percentiles (ms)."""
    ms = np.asarray(times, dtype=np.float64) * 1e3
    return {"batch_size": int(batch_size), "repeats": int(ms.size),
            "images_per_sec": float(batch_size / ms.mean() * 1e3),
            "latency_ms": {"mean": float(ms.mean()), "min": float(ms.min()),
                           **{f"p{q}": float(np.percentile(ms, q)) for q in (50, 90, 99)}}}


def time_interleaved(steps: Mapping[str, Callable[[], Any]], warmup: int = 5,
                     repeats: int = 20) -> Dict[str, List[float]]:
    """Seconds of each of ``repeats`` calls per step, called round-robin after ``warmup``
    untimed calls each."""
    warmup, repeats = NON_NEGATIVE_INT("warmup", warmup), POSITIVE_INT("repeats", repeats)
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def make_train_step(model: paddle.nn.Layer, batch: np.ndarray, lr: float = 0.01,
                    seed: int = 0) -> Callable[[], float]:
    """One training step (cross-entropy on random labels, backward, SGD) of a deep copy of
    ``model``, so the caller's model keeps its weights and mode."""
    net = copy.deepcopy(model)
    net.train()
    x = paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32))
    with paddle.no_grad():
        num_classes = net(x[:1]).shape[-1]
    y = paddle.to_tensor(np.random.default_rng(seed).integers(0, num_classes, len(batch)))
    optimizer = paddle.optimizer.SGD(learning_rate=lr, parameters=net.parameters())

    def step() -> float:
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        return float(loss)  # float() waits for the step to finish, so the timing is whole

    return step


def exported_predictors(backend: str, models: Mapping[str, Optional[paddle.nn.Layer]],
                        shapes: Mapping[str, Sequence[int]], threads: int, workdir: str,
                        onnx: bool = False, opset: int = 13,
                        options: Optional[InferenceOptions] = None) -> Dict[str, Callable]:
    """``{name: predictor}`` on ``backend``; a static one first exports each model (with ONNX
    when ``onnx`` or ``backend`` is onnx) to ``workdir/name``, unless that export exists
    (a model given as None must have it). ``options``: the runtimes' device, TensorRT..."""
    out = {}
    for name, model in models.items():
        folder = os.path.join(workdir, name)
        wanted = inference_files(folder)["onnx" if backend == "onnx" else "model"]
        if backend != "dygraph" and not os.path.isfile(wanted) and model is not None:
            export_model(model, folder, shapes[name], onnx=onnx or backend == "onnx",
                         opset_version=opset, check=False)
        opts = options
        if backend == "dygraph" and opts is not None:  # TensorRT is the exports' alone
            opts = dataclasses.replace(opts, use_tensorrt=False, precision="fp32")
        try:
            out[name] = create_predictor(backend, model, folder, threads, opts,
                                         image_shape=shapes[name])
        except RuntimeError as exc:
            raise RuntimeError(f"{name}: {exc}") from None
    return out


def benchmark(models: Mapping[str, paddle.nn.Layer], image_shape: Sequence[int],
              batch_size: int = 128, warmup: int = 5, repeats: int = 20,
              threads: Optional[int] = None, backends: Sequence[str] = BACKENDS,
              train: bool = False, train_warmup: Optional[int] = None,
              train_repeats: Optional[int] = None, opset: int = 13, seed: int = 0,
              log: Optional[Callable[[str], None]] = None,
              options: Optional[InferenceOptions] = None,
              export_dir: Optional[str] = None) -> Dict[str, Any]:
    """Inference (and, with ``train``, training) speed of ``models`` on one random batch of
    ``image_shape`` (seeded by ``seed``), with ``threads`` CPU threads (default:
    ``OMP_NUM_THREADS``, else all cores). Static ``backends`` export each model to a temporary
    folder first. With two or more models, ``ratios`` holds the first's throughput over the
    second's. Training defaults to ``min(warmup, 2)`` warm-up and ``repeats`` timed steps.
    ``log`` is called with a progress line before each measurement (e.g. ``print``).
    ``options`` (``InferenceOptions``) set the static runtimes' device, TensorRT, ...
    ``export_dir``: time that export folder (``models`` is then ``{name: None}``; static
    backends only), as ``benchmark --model-dir`` does.

    Returns:
        ``{"threads", "batch_size", "image_shape", "warmup", "repeats", "backends",
        "models": {name: {backend or "train": latency_stats}}, "ratios": {backend: r},
        "ratio_of": [first, second], "devices": {backend: what ran}}``.
    """
    if not models:
        raise ValueError("benchmark needs at least one model")
    image_shape = check_image_shape(list(image_shape))
    batch_size = POSITIVE_INT("batch_size", batch_size)
    threads = POSITIVE_INT("threads", threads if threads is not None else cpu_threads())
    backends = list(backends)
    for b in backends:
        if b not in BACKENDS:
            raise ValueError(f"unknown backend {b!r}; valid: {', '.join(BACKENDS)}")
    if not backends and not train:
        raise ValueError(f"nothing to measure: give --backends (any of {', '.join(BACKENDS)}) "
                         "and/or --train")
    log = log or (lambda msg: None)
    set_paddle_threads(threads)
    batch = np.random.default_rng(seed).standard_normal(
        (batch_size, *image_shape)).astype(np.float32)
    results: Dict[str, Dict[str, Any]] = {name: {} for name in models}
    shapes, devices = {name: image_shape for name in models}, {}
    if export_dir is not None:
        if "dygraph" in backends or train or len(models) != 1:
            raise ValueError("an export folder times the paddle and onnx backends of one "
                             "model; give -c CONFIG for dygraph or --train")
        export_dir = os.path.abspath(export_dir)
    with tempfile.TemporaryDirectory(prefix="orthonets-bench-") as workdir:
        for backend in backends:
            log(f"{BACKEND_LABELS[backend]}: preparing {', '.join(models)}")
            predictors = exported_predictors(
                backend, models, shapes, threads,
                os.path.dirname(export_dir) if export_dir else workdir, opset=opset,
                options=options)
            devices[backend] = getattr(next(iter(predictors.values())), "device", backend)
            log(f"{BACKEND_LABELS[backend]}: {warmup} warm-up + {repeats} timed batches each")
            times = time_interleaved({n: (lambda p=p: p(batch)) for n, p in predictors.items()},
                                     warmup, repeats)
            for name, t in times.items():
                results[name][backend] = latency_stats(t, batch_size)
            del predictors
    if train:
        tw = min(warmup, 2) if train_warmup is None else train_warmup
        tr = repeats if train_repeats is None else train_repeats
        log(f"training: {tw} warm-up + {tr} timed steps each")
        steps = {name: make_train_step(m, batch, seed=seed) for name, m in models.items()}
        for name, t in time_interleaved(steps, tw, tr).items():
            results[name]["train"] = latency_stats(t, batch_size)
    names, ratios = list(models), {}
    if len(names) >= 2:
        a, b = results[names[0]], results[names[1]]
        ratios = {k: a[k]["images_per_sec"] / b[k]["images_per_sec"] for k in a if k in b}
    return {"threads": threads, "batch_size": batch_size, "image_shape": image_shape,
            "warmup": warmup, "repeats": repeats, "backends": backends, "models": results,
            "ratios": ratios, "ratio_of": names[:2] if ratios else [], "devices": devices}


def format_benchmark(result: Dict[str, Any]) -> str:
    """A plain-text table of ``benchmark``'s result (thread count stated)."""
    shape = "x".join(map(str, result["image_shape"]))
    lines = [f"batch {result['batch_size']}, input {shape}, {result['threads']} CPU threads, "
             f"{result['warmup']} warm-up + {result['repeats']} timed batches "
             "(latency per batch)"]
    lines += [v for v in result.get("devices", {}).values() if v != "dygraph on cpu"]
    width = max(5, *(len(n) for n in result["models"]))
    header = (f"{'model':<{width}}  {'backend':<16}  {'images/s':>9}  {'p50 ms':>9}  "
              f"{'p90 ms':>9}  {'p99 ms':>9}")
    lines += [header, "-" * len(header)]
    for kind in [*result["backends"], "train"]:
        for name, per in result["models"].items():
            if kind in per:
                s, lat = per[kind], per[kind]["latency_ms"]
                lines.append(f"{name:<{width}}  {BACKEND_LABELS[kind]:<16}  "
                             f"{s['images_per_sec']:>9.1f}  {lat['p50']:>9.1f}  "
                             f"{lat['p90']:>9.1f}  {lat['p99']:>9.1f}")
    if result["ratios"]:
        parts = ", ".join(f"{BACKEND_LABELS[k]} {v:.3f}" for k, v in result["ratios"].items())
        lines.append("throughput ratio {} / {}: {}".format(*result["ratio_of"], parts))
    return "\n".join(lines)



def benchmark_export(model_dir: str, backends: Sequence[str] = ("paddle", "onnx"),
                     **kwargs: Any) -> Dict[str, Any]:
    """``benchmark`` of the export in ``model_dir`` alone (``benchmark --model-dir``): its
    ``inference.yml`` gives the model name and input shape; ``kwargs`` as ``benchmark``'s."""
    from .infer import config_from_export

    cfg = config_from_export(model_dir)
    folder = os.path.basename(os.path.normpath(os.path.abspath(model_dir)))
    out = benchmark({folder: None}, cfg["Global"]["image_shape"], backends=backends,
                    export_dir=model_dir, **kwargs)
    out["models"] = {cfg["Arch"]["name"]: out["models"][folder]}  # the model, not the folder
    return out
