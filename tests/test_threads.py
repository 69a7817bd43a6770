"""Compute threads and DataLoader workers chosen together from the machine (issue 30)."""
import os
import signal
import subprocess
import sys

import paddle
import pytest

from orthonets_paddle.engine.config import ConfigError, load_config
from orthonets_paddle.utils import threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = os.path.join(ROOT, "configs", "orthonet18_fashionmnist.yaml")
NO_OMP = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PYTHONWARNINGS")}

# The rule, written out: per process p = cores // ranks. Auto workers: 0 on a CPU, min(4, p - 1)
# on a GPU; auto threads: p - max(1, workers) (at least 1) on a CPU, 1 on a GPU. A given
# number is kept; auto workers beside given threads take at most p - threads.
RULE = [
    # cores, ranks, device, workers, threads -> threads, workers
    (2, 1, "cpu", "auto", None, 1, 0),
    (1, 1, "cpu", "auto", None, 1, 0),
    (8, 1, "cpu", "auto", None, 7, 0),
    (8, 2, "cpu", "auto", None, 3, 0),
    (2, 2, "cpu", "auto", None, 1, 0),
    (3, 2, "cpu", None, None, 1, 0),       # null means auto
    (2, 1, "cpu", 2, None, 1, 2),          # the config's number is kept, threads make room
    (8, 1, "cpu", 2, None, 6, 2),
    (8, 1, "cpu", 1, None, 7, 1),
    (8, 1, "cpu", 0, None, 7, 0),          # a core for the data in the main process
    (2, 1, "cpu", "auto", 2, 2, 0),        # OMP_NUM_THREADS kept
    (2, 1, "cpu", 3, 4, 4, 3),             # both given: both kept, even oversubscribed
    (2, 1, "gpu", "auto", None, 1, 1),
    (8, 1, "gpu", "auto", None, 1, 4),     # the seed's 4 workers
    (64, 1, "gpu", "auto", None, 1, 4),
    (16, 4, "gpu", "auto", None, 1, 3),
    (1, 1, "gpu", "auto", None, 1, 0),
    (8, 1, "gpu", "auto", 6, 6, 2),
    (8, 1, "gpu", 8, None, 1, 8),
]


@pytest.mark.parametrize("cores,ranks,device,workers,given,want_t,want_w", RULE)
def test_plan_follows_the_rule(cores, ranks, device, workers, given, want_t, want_w):
    assert threads.plan(cores, ranks, device, workers, given) == (want_t, want_w)


@pytest.mark.parametrize("cores", range(1, 33))
@pytest.mark.parametrize("ranks", [1, 2, 4])
@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_auto_never_oversubscribes(cores, ranks, device):
    t, w = threads.plan(cores, ranks, device)
    per = max(1, cores // ranks)
    assert t >= 1 and w >= 0 and (t + w <= per or (t, w) == (1, 0))


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: ``machine(cores, omp)``; Paddle's set_num_threads is recorded."""
    seen = []
    monkeypatch.setattr(paddle.base.core, "set_num_threads", seen.append)
    monkeypatch.setattr(threads, "_CHOSEN", None)
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)

    def make(cores, omp=None):
        monkeypatch.setattr(threads.os, "cpu_count", lambda: cores)
        monkeypatch.setattr(threads, "_USER", omp)
        return seen
    return make


def test_setup_sets_paddle_threads_and_auto_loaders_get_its_workers(machine):
    from orthonets_paddle.data.loader import _loader

    seen = machine(8)
    assert threads.setup_threads("auto", "gpu") == (1, 4) and seen == [1]
    assert threads.loader_workers("auto") == 4 and threads.loader_workers(None) == 4
    assert threads.loader_workers(2) == 2 and threads.loader_workers(0) == 0
    loader = _loader(list(range(8)), paddle.io.BatchSampler(list(range(8)), batch_size=4),
                     lambda batch, skip: batch)
    assert loader.num_workers == 4
    assert threads.threads_line() == ("threads: 1 compute + 4 data workers on 8 cores (GPU run); "
                                      "set OMP_NUM_THREADS / DataLoader.Train.loader.num_workers "
                                      "to change")


def test_omp_num_threads_overrides_and_ranks_share_the_cores(machine, monkeypatch):
    seen = machine(8, omp="3")
    assert threads.setup_threads("auto", "cpu") == (3, 0) and seen == [3]
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    machine(8)
    assert threads.setup_threads(1, "cpu") == (3, 1) and seen[-1] == 3
    assert threads.threads_line().startswith(
        "threads: 3 compute + 1 data worker per process, 2 processes on 8 cores; ")


@pytest.mark.parametrize("value,want", [("auto", "auto"), (None, "auto"), (3, 3), (0, 0)])
def test_config_takes_auto_or_a_count(value, want):
    cfg = load_config(FMNIST, [f"DataLoader.Train.loader.num_workers={'null' if value is None else value}"])
    assert cfg["DataLoader"]["Train"]["loader"]["num_workers"] == want


@pytest.mark.parametrize("value", ["-1", "many", "1.5", "true", "257"])
def test_config_refuses_other_worker_counts_in_one_line(value):
    with pytest.raises(ConfigError, match=r"DataLoader.Train.loader.num_workers must be an "
                                          r"integer >= 0 and <= 256 or auto, got"):
        load_config(FMNIST, [f"DataLoader.Train.loader.num_workers={value}"])


@pytest.mark.parametrize("name", ["orthonet18_cifar10", "orthonet18_cifar100", "resnet18_cifar10",
                                  "orthonet18_fashionmnist"])
def test_shipped_small_configs_leave_workers_to_the_machine(name):
    cfg = load_config(os.path.join(ROOT, "configs", f"{name}.yaml"))
    assert [cfg["DataLoader"][s]["loader"]["num_workers"] for s in ("Train", "Eval")] == ["auto"] * 2


def test_a_training_run_prints_its_choice_once(tmp_path):
    out = tmp_path / "run"
    args = ["-c", FMNIST, "-o", f"Global.output_dir={out}", "-o", "Global.epochs=1",
            "-o", "DataLoader.Train.dataset.num_samples=64", "-o", "DataLoader.Eval.dataset.num_samples=32",
            "-o", "DataLoader.Train.sampler.batch_size=32", "-o", "Arch.width=4",
            "-o", "Global.use_visualdl=False", "-o", "Global.plot=False"]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), *args],
                          capture_output=True, text=True, env=NO_OMP, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "threads:" in ln]
    cores = os.cpu_count() or 1
    t, w = max(1, cores - 1), 0  # nothing set, on a CPU: the rule above
    assert len(lines) == 1, lines
    assert lines[0].endswith(f"threads: {t} compute + {w} data worker{'' if w == 1 else 's'} on "
                             f"{cores} cores; set OMP_NUM_THREADS / "
                             f"DataLoader.Train.loader.num_workers to change"), lines


# ----------------------------------------------------------------------------- console noise
def test_ctrl_c_prints_one_resume_line_and_no_paddle_warning(tmp_path):
    """A terminal's Ctrl-C (SIGINT to the whole process group) in the third epoch of a real
    run with the default workers: one resume line, exit 130, none of Paddle's notices."""
    out = tmp_path / "run"
    args = ["-c", FMNIST, "-o", f"Global.output_dir={out}", "-o", "Global.epochs=100",
            "-o", "DataLoader.Train.dataset.num_samples=512", "-o", "DataLoader.Eval.dataset.num_samples=32",
            "-o", "DataLoader.Train.sampler.batch_size=32",
            "-o", "Arch.width=4", "-o", "Global.use_visualdl=False", "-o", "Global.plot=False"]
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "train.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=NO_OMP,
                            cwd=ROOT, start_new_session=True,  # its own group, as in a terminal
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    try:
        for line in proc.stdout:  # until the second epoch is saved
            seen.append(line)
            if " epoch 2/100 " in line:
                break
        os.killpg(proc.pid, signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(seen) + rest + err
    assert proc.returncode == 130, text[-3000:]
    hints = [ln for ln in text.splitlines() if "resume with" in ln]
    assert len(hints) == 1 and hints[0].endswith(f"-o Global.checkpoints={out}"), text[-3000:]
    for noise in ("EnforceNotMet", "backward.cc", "C++ Traceback", "Traceback"):
        assert noise not in text, text[-3000:]


def test_importing_the_package_prints_nothing():
    code = ("import orthonets_paddle, orthonets_paddle.engine.trainer, orthonets_paddle.deploy.infer,"
            " orthonets_paddle.models")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=NO_OMP,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr
