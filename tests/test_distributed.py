"""Two CPU processes with Paddle's launcher (one launcher with two ranks, or two launchers as
two nodes on localhost) equal one process on the same global batch; a run whose rank is
killed continues with the same command (``Global.checkpoints: auto``).

The set-up makes that exact up to float rounding: ``Arch.norm=frozen_bn`` (BatchNorm uses
its running statistics in training too, so a sample's output does not depend on the other
samples of its rank's batch), no random augmentation, both runs start from the same
weights file, and rank r's batch i is the single run's batch i at positions r, r+2, ...
Then the mean loss over the global batch has the gradient the ranks average, and the
weight updates must agree to float tolerance. A run whose ranks do not average their
gradients (each trains alone on half the data) is off by orders of magnitude more.
"""
import json
import math
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import paddle
import pytest

from data_files import make_cifar_archive
from orthonets_paddle.engine import load_states
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.models import build_model_from_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")
# No random augmentation: both runs must see identical inputs.
PLAIN = "[{ToTensor: {}}, {Normalize: {mean: [0.5,0.5,0.5], std: [0.5,0.5,0.5]}}]"
ARCH = ["Arch.width=4", "Arch.norm=frozen_bn"]


def _overrides(archive, out, batch, start):
    over = [f"Global.output_dir={out}", "Global.epochs=2", "Global.progress_bar=False",
            "Global.use_visualdl=False", "Global.plot=False", f"Global.pretrained_model={start}",
            f"DataLoader.Train.dataset.data_file={archive}", f"DataLoader.Eval.dataset.data_file={archive}",
            f"DataLoader.Train.dataset.transform_ops={PLAIN}", f"DataLoader.Train.sampler.batch_size={batch}",
            "DataLoader.Eval.sampler.batch_size=8", "DataLoader.Train.loader.num_workers=0",
            "DataLoader.Eval.loader.num_workers=0", *ARCH, "Optimizer.lr={name: Cosine, learning_rate: 0.05}"]
    return [a for o in over for a in ("-o", o)]


LAUNCH = [sys.executable, "-m", "paddle.distributed.launch"]
TRAIN = os.path.join(ROOT, "tools", "train.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _logs(folder):
    return {f: open(os.path.join(folder, f)).read() for f in sorted(os.listdir(folder))
            if f.startswith("workerlog")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process at global batch 32, and one launcher with 2 ranks x 16, from one start."""
    tmp = tmp_path_factory.mktemp("dist")
    archive = make_cifar_archive(str(tmp / "cifar-10-python.tar.gz"), n_train=64, n_test=30)
    paddle.seed(1)
    start = build_model_from_config(load_config(CFG, ARCH)["Arch"]).state_dict()
    start_file = str(tmp / "start.pdparams")
    paddle.save(start, start_file)
    single = subprocess.run([sys.executable, TRAIN, "-c", CFG,
                             *_overrides(archive, tmp / "single", 32, start_file)],
                            capture_output=True, text=True, env=ENV, timeout=110)
    assert single.returncode == 0, single.stderr[-3000:]
    dist = subprocess.run([*LAUNCH, "--nproc_per_node", "2", "--log_dir", str(tmp / "log"), TRAIN,
                           "-c", CFG, *_overrides(archive, tmp / "dist", 16, start_file)],
                          capture_output=True, text=True, env=ENV, timeout=110)
    assert dist.returncode == 0, "".join(_logs(tmp / "log").values())[-3000:]
    return {"tmp": tmp, "archive": archive, "start": start, "start_file": start_file}


def _assert_same_training(start, single, dist):
    """``dist``'s final weights and history equal ``single``'s up to float rounding."""
    ms = json.load(open(single / "metrics.json"))
    md = json.load(open(dist / "metrics.json"))
    # 64 samples / global batch 32 = 2 steps per epoch in both runs.
    assert ms["acc_record"]["val"]["iter"] == md["acc_record"]["val"]["iter"] == [2, 4]
    a = paddle.load(str(single / "final_model.pdparams"))
    b = paddle.load(str(dist / "final_model.pdparams"))
    assert list(a) == list(b)
    # The update each run made, parameter by parameter: equal to float32 rounding.
    moved = 0
    for key, w0 in start.items():
        da = a[key].numpy().astype(np.float64) - w0.numpy()
        db = b[key].numpy().astype(np.float64) - w0.numpy()
        if not np.any(da):  # buffers: filters, frozen running statistics
            np.testing.assert_array_equal(db, 0.0, err_msg=key)
            continue
        moved += 1
        rel = np.linalg.norm(db - da) / np.linalg.norm(da)
        # Measured: at most 2e-6; ranks training alone (no gradient average): 0.5-1.
        assert rel < 1e-4, f"{key}: update differs by {rel:.2e} relative"
    assert moved > 40  # every conv, BN affine, attention and fc parameter trained
    for es, ed in zip(ms["epochs"], md["epochs"]):
        # The logged train loss is the mean over ranks: the global batch's mean loss.
        np.testing.assert_allclose(ed["train_loss"], es["train_loss"], rtol=1e-5)
        np.testing.assert_allclose(ed["val_loss"], es["val_loss"], rtol=1e-5)
        assert ed["val_acc"] == es["val_acc"] and ed["lr"] == es["lr"]


def test_two_processes_match_one_with_the_same_global_batch(runs):
    tmp = runs["tmp"]
    logs = _logs(tmp / "log")
    assert len(logs) == 2
    # Rank 1 is quiet: only rank 0 logs epochs, and warns once about the global batch.
    assert "epoch 2/2" in logs["workerlog.0"] and "epoch 2/2" not in logs["workerlog.1"]
    warning = "global batch 32 (2 processes x 16) where the config's reference is 16"
    assert logs["workerlog.0"].count(warning) == 1 and warning not in logs["workerlog.1"]
    _assert_same_training(runs["start"], tmp / "single", tmp / "dist")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_launchers_as_two_nodes_match_one_process(runs, tmp_path):
    # What two machines run (--nnodes 2 --master HOST:PORT, one process each), on localhost.
    port, out = _free_port(), tmp_path / "nodes"
    cmd = lambda node: [*LAUNCH, "--nnodes", "2", "--master", f"127.0.0.1:{port}", "--nproc_per_node",
                        "1", "--log_dir", str(tmp_path / f"log{node}"), TRAIN, "-c", CFG,
                        *_overrides(runs["archive"], out, 16, runs["start_file"])]
    nodes = [subprocess.Popen(cmd(n), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=ENV) for n in range(2)]
    try:
        outs = [p.communicate(timeout=150)[0] for p in nodes]
    finally:
        for p in nodes:
            p.kill()
    logs = [_logs(tmp_path / f"log{n}") for n in range(2)]
    assert [p.returncode for p in nodes] == [0, 0], (outs, logs)
    ranks = sorted(log["workerlog.0"].count("epoch 2/2") for log in logs)
    assert ranks == [0, 1]  # one node's process is rank 0 (it logs), the other rank 1
    _assert_same_training(runs["start"], runs["tmp"] / "single", out)


# Rank 1 dies (SIGKILL, like a lost machine) at its first sample after the epoch-1 checkpoint
# is committed, once: the marker file keeps the rerun alive.
_DYING = """
import os, runpy, signal, sys
from orthonets_paddle.data import datasets
orig = datasets.Cifar10.__getitem__
def dying(self, i):
    if (os.environ.get("PADDLE_TRAINER_ID") == "1" and os.path.exists({latest!r})
            and not os.path.exists({marker!r})):
        open({marker!r}, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(self, i)
datasets.Cifar10.__getitem__ = dying
sys.argv = [{train!r}] + sys.argv[1:]
sys.path.insert(0, os.path.dirname({train!r}))  # as running the script itself would
runpy.run_path({train!r}, run_name="__main__")
"""


def test_a_killed_rank_continues_by_rerunning_the_same_command(runs, tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "dying_train.py"
    script.write_text(_DYING.format(latest=str(out / "latest.pdstates"), marker=str(tmp_path / "died"),
                                    train=TRAIN))
    cmd = lambda log: [*LAUNCH, "--nproc_per_node", "2", "--max_restart", "1", "--log_dir",
                       str(tmp_path / log), str(script), "-c", CFG, "-o", "Global.checkpoints=auto",
                       *_overrides(runs["archive"], out, 16, runs["start_file"])]
    env = dict(ENV, PYTHONPATH=ROOT)
    first = subprocess.run(cmd("log1"), capture_output=True, text=True, env=env, timeout=150)
    # Paddle 3.3.1's launcher restarts a failed rank only in elastic mode (an etcd:// master):
    # here the job fails, its other rank is stopped, and --max_restart is not used.
    assert first.returncode != 0 and (tmp_path / "died").exists()
    assert not (out / "final_model.pdparams").exists()
    assert json.load(open(out / "metrics.json"))["epochs"][-1]["epoch"] == 1
    again = subprocess.run(cmd("log2"), capture_output=True, text=True, env=env, timeout=150)
    logs = _logs(tmp_path / "log2")
    assert again.returncode == 0, "".join(logs.values())[-3000:]
    assert "resumed from" in logs["workerlog.0"] and "continuing at epoch 2" in logs["workerlog.0"]
    assert "resume:" not in logs["workerlog.0"]  # nothing about the run changed
    a = paddle.load(str(runs["tmp"] / "dist" / "final_model.pdparams"))
    b = paddle.load(str(out / "final_model.pdparams"))
    for k in a:  # the uninterrupted 2-process run's weights
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-6, atol=1e-7, err_msg=k)


def test_a_one_process_run_resumed_on_two_continues_its_schedule_by_epoch(runs, tmp_path):
    # The case: 2 epochs of 2 steps (global batch 32) resumed on 2 processes x 32
    # (1 step/epoch) for 4 epochs. Replaying global step 4 against a 4 x 1-step cosine
    # trained both extra epochs at lr 0, and both ranks drew rank 0's saved RNG stream.
    out = shutil.copytree(runs["tmp"] / "single", tmp_path / "run")
    over = _overrides(runs["archive"], out, 32, runs["start_file"])
    over[over.index(f"Global.output_dir={out}") + 2] = "Global.epochs=4"
    proc = subprocess.run([*LAUNCH, "--nproc_per_node", "2", "--log_dir", str(tmp_path / "log"), TRAIN,
                           "-c", CFG, *over, "-o", f"Global.checkpoints={out}"],
                          capture_output=True, text=True, env=ENV, timeout=150)
    logs = _logs(tmp_path / "log")
    assert proc.returncode == 0, "".join(logs.values())[-3000:]
    lines = [l for l in logs["workerlog.0"].splitlines() if "resume: " in l]
    assert len(lines) == 1 and "resume: " not in logs["workerlog.1"]
    assert ("1 process(es) x 32 -> 2 x 32 (global batch 32 -> 64, 2 -> 1 steps/epoch); the learning-rate "
            "schedule continues by epoch (global step 4 -> 2, the start of epoch 3)") in lines[0]
    assert "Global.epochs 2 -> 4" in lines[0] and "rank 1 starts a new one from Global.seed" in lines[0]
    # Epochs 3 and 4 are steps 2 and 3 of the half cosine over 4 epochs x 1 step.
    rows = json.load(open(out / "metrics.json"))["epochs"]
    want = [0.05 * 0.5 * (1 + math.cos(math.pi * it / 4)) for it in (2, 3)]
    np.testing.assert_allclose([r["lr"] for r in rows[2:]], want, rtol=1e-9)
    st = load_states(str(out / "latest.pdstates"))
    assert st["global_step"] == 4 and st["run"]["world_size"] == 2
    a, b = (s["numpy"][1] for s in st["rank_rng"])  # each rank its own stream
    assert not np.array_equal(a, b)
