"""Throughput and latency of models on the three runtimes, and training speed.

``measure_inference(predict_fn, batch)`` and ``measure_training(model, batch)`` time one
model; ``benchmark(models, ...)`` times several on the same batches, interleaving their
repeats (A, B, A, B, ...) so a machine that gets busier or cooler during the run affects
every model alike, which matters for a ratio such as OrthoNet-18 / ResNet-18.
Figures are wall-clock: a busy machine gives lower throughput for all.
"""
from __future__ import annotations

import copy
import os
import tempfile
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F

from ..models.registry import build_model_from_config, model_channels
from ..utils.io import write_json
from ..utils.schema import Typed
from ..utils.threads import cpu_threads, set_paddle_threads
from .export import check_image_shape, export_model
from .predictors import BACKENDS, create_predictor, inference_files

__all__ = ["latency_stats", "time_interleaved", "measure_inference", "measure_training",
           "make_train_step", "benchmark", "format_benchmark", "benchmark_models", "save_benchmark",
           "BACKEND_LABELS"]

BACKEND_LABELS = {"dygraph": "dygraph", "paddle": "Paddle Inference", "onnx": "ONNX Runtime",
                  "train": "training"}


def _positive(name: str, value: Any, minimum: int = 1) -> int:
    return Typed("int", min=minimum)(name, value)


def latency_stats(times: Sequence[float], batch_size: int) -> Dict[str, Any]:
    """Per-batch times (seconds) -> images/s (from the mean) and latency percentiles (ms)."""
    t = np.asarray(times, dtype=np.float64)
    ms = t * 1e3
    return {"batch_size": int(batch_size), "repeats": int(t.size),
            "images_per_sec": float(batch_size / t.mean()),
            "latency_ms": {"mean": float(ms.mean()), "min": float(ms.min()),
                           "p50": float(np.percentile(ms, 50)),
                           "p90": float(np.percentile(ms, 90)),
                           "p99": float(np.percentile(ms, 99))}}


def time_interleaved(steps: Mapping[str, Callable[[], Any]], warmup: int = 5,
                     repeats: int = 20) -> Dict[str, List[float]]:
    """Time each step ``repeats`` times, in round-robin order, after ``warmup`` untimed
    calls each. Returns the per-call seconds by step name."""
    warmup = _positive("warmup", warmup, 0)
    repeats = _positive("repeats", repeats)
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


def measure_inference(predict_fn: Callable[[np.ndarray], Any], batch: np.ndarray,
                      warmup: int = 5, repeats: int = 20) -> Dict[str, Any]:
    """Throughput and latency of ``predict_fn(batch)`` (any predictor, or a function).

    Returns:
        ``{"batch_size", "repeats", "images_per_sec", "latency_ms": {mean, min, p50, p90, p99}}``.
    """
    times = time_interleaved({"model": lambda: predict_fn(batch)}, warmup, repeats)["model"]
    return latency_stats(times, len(batch))


def make_train_step(model: paddle.nn.Layer, batch: np.ndarray, labels: Optional[np.ndarray] = None,
                    lr: float = 0.01, seed: int = 0) -> Callable[[], float]:
    """One training step (forward, cross-entropy, backward, SGD update) as a callable.

    It trains a deep copy, so the caller's model keeps its weights and mode. ``labels``
    default to random classes of the model's output width.
    """
    net = copy.deepcopy(model)
    net.train()
    x = paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32))
    if labels is None:
        with paddle.no_grad():
            num_classes = net(x[:1]).shape[-1]
        labels = np.random.default_rng(seed).integers(0, num_classes, len(batch))
    y = paddle.to_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
    optimizer = paddle.optimizer.SGD(learning_rate=lr, parameters=net.parameters())

    def step() -> float:
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        return float(loss)  # float() waits for the step to finish, so the timing is whole

    return step


def measure_training(model: paddle.nn.Layer, batch: np.ndarray,
                     labels: Optional[np.ndarray] = None, warmup: int = 2, repeats: int = 10,
                     lr: float = 0.01) -> Dict[str, Any]:
    """Training images/s (forward + backward + SGD step) on a copy of ``model``.

    Returns:
        As ``measure_inference``.
    """
    step = make_train_step(model, batch, labels, lr)
    return latency_stats(time_interleaved({"model": step}, warmup, repeats)["model"], len(batch))


def _predictors(backend: str, models: Mapping[str, paddle.nn.Layer], image_shape: Sequence[int],
                threads: int, workdir: str, opset: int) -> Dict[str, Callable]:
    out = {}
    for name, model in models.items():
        folder = os.path.join(workdir, name)
        wanted = inference_files(folder)["onnx" if backend == "onnx" else "model"]
        if backend != "dygraph" and not os.path.isfile(wanted):
            export_model(model, folder, image_shape, onnx=backend == "onnx",
                         opset_version=opset, check=False)
        try:
            out[name] = create_predictor(backend, model, folder, threads)
        except RuntimeError as exc:
            raise RuntimeError(f"{name}: {exc}") from None
    return out


def benchmark(models: Mapping[str, paddle.nn.Layer], image_shape: Sequence[int],
              batch_size: int = 128, warmup: int = 5, repeats: int = 20,
              threads: Optional[int] = None, backends: Sequence[str] = BACKENDS,
              train: bool = False, train_warmup: Optional[int] = None,
              train_repeats: Optional[int] = None, opset: int = 13, seed: int = 0,
              log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Inference (and optionally training) speed of ``models`` on the same random batch.

    Static backends export each model to a temporary folder first. With two or more
    models, ``ratios`` holds the first model's throughput over the second's per backend.

    Args:
        models: name -> model (in the order the ratio uses: first / second).
        image_shape: ``[C, H, W]``.
        batch_size: images per batch.
        warmup: untimed batches per model and backend.
        repeats: timed batches per model and backend.
        threads: CPU threads for every backend (default: ``OMP_NUM_THREADS``, else all cores).
        backends: any of ``dygraph``, ``paddle``, ``onnx``.
        train: also time training steps.
        train_warmup: warm-up training steps (default ``min(warmup, 2)``).
        train_repeats: timed training steps (default ``repeats``).
        opset: ONNX opset of the temporary export.
        seed: seed of the input batch.
        log: called with a progress line before each measurement (e.g. ``print``).

    Returns:
        ``{"threads", "batch_size", "image_shape", "warmup", "repeats", "backends",
        "models": {name: {backend: stats, "train": stats}}, "ratios": {backend: r},
        "ratio_of": [first, second]}``.
    """
    if not models:
        raise ValueError("benchmark needs at least one model")
    image_shape = check_image_shape(list(image_shape))
    batch_size = _positive("batch_size", batch_size)
    threads = _positive("threads", threads if threads is not None else cpu_threads())
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
    with tempfile.TemporaryDirectory(prefix="orthonets-bench-") as workdir:
        for backend in backends:
            log(f"{BACKEND_LABELS[backend]}: preparing {', '.join(models)}")
            predictors = _predictors(backend, models, image_shape, threads, workdir, opset)
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
    names = list(models)
    ratios = {}
    if len(names) >= 2:
        a, b = results[names[0]], results[names[1]]
        ratios = {k: a[k]["images_per_sec"] / b[k]["images_per_sec"] for k in a if k in b}
    return {"threads": threads, "batch_size": batch_size, "image_shape": image_shape,
            "warmup": warmup, "repeats": repeats, "backends": backends, "models": results,
            "ratios": ratios, "ratio_of": names[:2] if ratios else []}


def format_benchmark(result: Dict[str, Any]) -> str:
    """A plain-text table of ``benchmark``'s result (thread count stated)."""
    shape = "x".join(map(str, result["image_shape"]))
    lines = [f"batch {result['batch_size']}, input {shape}, {result['threads']} CPU threads, "
             f"{result['warmup']} warm-up + {result['repeats']} timed batches "
             "(latency per batch)"]
    width = max(5, *(len(n) for n in result["models"]))
    header = (f"{'model':<{width}}  {'backend':<16}  {'images/s':>9}  {'p50 ms':>9}  "
              f"{'p90 ms':>9}  {'p99 ms':>9}")
    lines += [header, "-" * len(header)]
    kinds = [*result["backends"], "train"]
    for kind in kinds:
        for name, per in result["models"].items():
            if kind not in per:
                continue
            s = per[kind]
            lat = s["latency_ms"]
            lines.append(f"{name:<{width}}  {BACKEND_LABELS[kind]:<16}  "
                         f"{s['images_per_sec']:>9.1f}  {lat['p50']:>9.1f}  {lat['p90']:>9.1f}  "
                         f"{lat['p99']:>9.1f}")
    if result["ratios"]:
        a, b = result["ratio_of"]
        parts = ", ".join(f"{BACKEND_LABELS[k]} {v:.3f}" for k, v in result["ratios"].items())
        lines.append(f"throughput ratio {a} / {b}: {parts}")
    return "\n".join(lines)


def save_benchmark(result: Dict[str, Any], path: str) -> str:
    """Write ``benchmark``'s result as JSON (atomically). Saved as ``RUN_DIR/benchmark.json``
    it fills the throughput column of ``tools/compare.py``."""
    return write_json(result, path)


def benchmark_models(cfg: Optional[Dict[str, Any]] = None, arch: Optional[str] = None,
                     num_classes: int = 1000, stem: str = "imagenet",
                     image_size: Optional[int] = None, width: Optional[int] = None,
                     compare: Optional[str] = None) -> Tuple[Dict[str, paddle.nn.Layer], List[int]]:
    """The models ``tools/benchmark.py`` times, and their input shape.

    Either ``cfg`` (its ``Arch``; input ``Global.image_shape``) or ``arch`` with
    ``num_classes``/``stem``/``width`` (input ``[3, image_size, image_size]``, by default the
    model's own ``input_size``). ``compare`` adds a second model with the same options.
    Weights do not change the timing, so none are loaded.

    Raises:
        ValueError: neither or both of ``cfg`` and ``arch``; ``compare`` equal to the model.
    """
    if (cfg is None) == (arch is None):
        raise ValueError("give either a config (-c CONFIG) or a model name (--arch NAME), "
                         "not both or neither")
    if cfg is not None:
        arch_cfg = dict(cfg["Arch"])
        shape = list(cfg["Global"]["image_shape"])
        if image_size is not None:
            shape = [shape[0], int(image_size), int(image_size)]
    else:
        arch_cfg = {"name": arch, "class_num": int(num_classes), "stem": stem}
        if width is not None:
            arch_cfg["width"] = int(width)
        if image_size is not None:
            arch_cfg["input_size"] = int(image_size)
        shape = None
    names = [arch_cfg["name"]]
    if compare:
        if compare == arch_cfg["name"]:
            raise ValueError(f"--compare {compare} is the model being benchmarked; compare with "
                             "another, e.g. --compare resnet18")
        names.append(compare)
    models = {}
    for name in names:
        models[name] = build_model_from_config(dict(arch_cfg, name=name))
        models[name].eval()
    if shape is None:
        first = models[names[0]]
        size = getattr(first, "input_size", 224)
        shape = [model_channels(arch_cfg), size, size]
    return models, shape
