"""The performance suite's pieces run and report what they measure (no timing asserted)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import suite as perf  # noqa: E402  (the project's suite, not installed)


def test_data_throughput_measures_both_backends_on_the_seed_transforms():
    from orthonets_paddle.engine.config import load_config
    cfg = load_config(os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml"))
    assert perf.SEED_TRAIN_TRANSFORMS == cfg["DataLoader"]["Train"]["dataset"]["transforms"]
    figures = perf.data_throughput(n=50)
    assert set(figures) == {"cv2", "pil"} and all(v > 0 for v in figures.values())


def test_peak_memory_of_a_training_step_in_a_child_process():
    mb = perf.peak_memory("resnet18", batch=2, size=16)
    assert 50 < mb < 20_000


def test_construction_times_are_reported_for_both_models():
    t = perf.construction_times("orthonet18", "resnet18", repeats=1)
    assert set(t) == {"orthonet18", "resnet18"} and min(t.values()) > 0


def test_verdicts_compare_against_the_targets():
    assert perf._verdict("memory_ratio", 1.05).startswith("met")
    assert perf._verdict("memory_ratio", 1.2).startswith("NOT met")
    assert perf._verdict("onnx_over_dygraph", 7.0).startswith("met")


def test_benchmark_data_cli():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--data"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cv2:" in proc.stdout and "pil:" in proc.stdout and "images/s" in proc.stdout
