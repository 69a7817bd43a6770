"""Two CPU processes with Paddle's launcher equal one process on the same global batch.

The set-up makes that exact up to float rounding: ``Arch.norm=frozen_bn`` (BatchNorm uses
its running statistics in training too, so a sample's output does not depend on the other
samples of its rank's batch), no random augmentation, both runs start from the same
weights file, and rank r's batch i is the single run's batch i at positions r, r+2, ...
Then the mean loss over the global batch has the gradient the ranks average, and the
weight updates must agree to float tolerance. A run whose ranks do not average their
gradients (each trains alone on half the data) is off by orders of magnitude more.
"""
import json
import os
import subprocess
import sys

import numpy as np
import paddle

from data_files import make_cifar_archive
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
            "DataLoader.Eval.loader.num_workers=0", *ARCH, "Optimizer.lr.learning_rate=0.05"]
    return [a for o in over for a in ("-o", o)]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    archive = make_cifar_archive(str(tmp_path / "cifar-10-python.tar.gz"), n_train=64, n_test=30)
    paddle.seed(1)
    start = build_model_from_config(load_config(CFG, ARCH)["Arch"]).state_dict()
    start_file = str(tmp_path / "start.pdparams")
    paddle.save(start, start_file)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", CFG,
                             *_overrides(archive, tmp_path / "single", 32, start_file)],
                            capture_output=True, text=True, env=env, timeout=110)
    assert single.returncode == 0, single.stderr[-3000:]
    dist = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                           "--log_dir", str(tmp_path / "log"), os.path.join(ROOT, "tools", "train.py"),
                           "-c", CFG, *_overrides(archive, tmp_path / "dist", 16, start_file)],
                          capture_output=True, text=True, env=env, timeout=110)
    logs = "".join(open(tmp_path / "log" / f).read() for f in sorted(os.listdir(tmp_path / "log"))
                   if f.startswith("workerlog"))
    assert dist.returncode == 0, logs[-3000:]
    assert len([f for f in os.listdir(tmp_path / "log") if f.startswith("workerlog")]) == 2
    # Rank 1 is quiet: only rank 0 logs epochs.
    assert "epoch 2/2" in open(tmp_path / "log" / "workerlog.0").read()
    assert "epoch 2/2" not in open(tmp_path / "log" / "workerlog.1").read()

    ms = json.load(open(tmp_path / "single" / "metrics.json"))
    md = json.load(open(tmp_path / "dist" / "metrics.json"))
    # 64 samples / global batch 32 = 2 steps per epoch in both runs.
    assert ms["acc_record"]["val"]["iter"] == md["acc_record"]["val"]["iter"] == [2, 4]
    a = paddle.load(str(tmp_path / "single" / "final_model.pdparams"))
    b = paddle.load(str(tmp_path / "dist" / "final_model.pdparams"))
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
