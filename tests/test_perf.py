"""The performance suite's pieces measure what they say (no speed is asserted)."""
import os
import subprocess
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import suite as perf  # noqa: E402  (the project's suite, not installed)


def test_data_throughput_times_the_seed_transforms_on_both_backends(monkeypatch):
    from orthonets_paddle.engine.config import load_config
    cfg = load_config(os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml"))
    assert perf.SEED_TRAIN_TRANSFORMS == cfg["DataLoader"]["Train"]["dataset"]["transform_ops"]
    calls = []

    def fake(ops, backend, n):
        calls.append((ops, backend, n))
        return {"cv2": 123.0, "pil": 45.0}[backend]

    monkeypatch.setattr(perf, "measure_transform_throughput", fake)
    assert perf.data_throughput(n=50) == {"cv2": 123.0, "pil": 45.0}
    assert calls == [(perf.SEED_TRAIN_TRANSFORMS, "cv2", 50), (perf.SEED_TRAIN_TRANSFORMS, "pil", 50)]


def test_peak_memory_counts_the_childs_training_state():
    # Momentum training holds each parameter three times (weight, gradient, velocity), in
    # float32: 20,000 classes instead of 10 add 512 x 19,990 (+ bias) parameters to the
    # classifier, i.e. 12 bytes each. The measured peaks must differ by at least most of
    # that (measured: within a few percent), and each exceed its model's own state.
    small = perf.peak_memory("resnet18", batch=2, size=16, classes=10)
    large = perf.peak_memory("resnet18", batch=2, size=16, classes=20_000)
    mb = 12 / 2 ** 20
    extra = (512 + 1) * (20_000 - 10) * mb
    assert small > 11_173_962 * mb  # resnet18 (10 classes, cifar stem) trainable parameters
    assert large - small > 0.8 * extra, (small, large, extra)


def test_construction_times_are_medians_of_interleaved_builds(monkeypatch):
    import orthonets_paddle.models as models_pkg
    built = []
    monkeypatch.setattr(models_pkg, "build_model", lambda name: built.append(name))

    def fake_interleaved(steps, warmup, repeats):
        assert warmup == 0 and repeats == 3
        for _ in range(repeats):
            for step in steps.values():
                step()
        return {"orthonet18": [3.0, 1.0, 2.0], "resnet18": [0.5, 0.7, 0.6]}

    monkeypatch.setattr(perf, "time_interleaved", fake_interleaved)
    assert perf.construction_times("orthonet18", "resnet18", repeats=3) == {"orthonet18": 2.0,
                                                                            "resnet18": 0.6}
    # A first, untimed build, then the two models in turn.
    assert built == ["resnet18"] + ["orthonet18", "resnet18"] * 3


def test_verdicts_compare_against_the_targets():
    assert perf._verdict("memory_ratio", 1.05).startswith("met")
    assert perf._verdict("memory_ratio", 1.1).startswith("met")  # the bound itself is met
    assert perf._verdict("memory_ratio", 1.2).startswith("NOT met")
    assert perf._verdict("onnx_over_dygraph", 7.0).startswith("met")
    assert perf._verdict("onnx_over_dygraph", 4.9).startswith("NOT met")
    assert "target >= 5" in perf._verdict("onnx_over_dygraph", 4.9)


def test_transform_throughput_is_images_over_the_timed_seconds(monkeypatch):
    clock = iter([10.0, 12.5])  # start and end of the timed loop: 2.5 s
    monkeypatch.setattr(perf, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    assert perf.measure_transform_throughput(perf.SEED_TRAIN_TRANSFORMS, "cv2", n=100) == 40.0
    with pytest.raises(ValueError, match="non-empty ops"):
        perf.measure_transform_throughput([], "cv2", n=10)


def test_benchmark_data_cli():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--data"],
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cv2:" in proc.stdout and "pil:" in proc.stdout and "images/s" in proc.stdout


def test_ratios_pair_adjacent_timings_and_name_valid_sections():
    from benchmarks import ratios
    # Per-repeat ratios 2, 4, 3 (not the ratio of medians, 4 / 1 = 4).
    assert ratios.paired([2.0, 4.0, 6.0], [1.0, 1.0, 2.0]) == {"median": 3.0, "min": 2.0,
                                                               "max": 4.0, "n": 3}
    with pytest.raises(ValueError, match="valid: dygraph32"):
        ratios.run(sections=["gpu"])
