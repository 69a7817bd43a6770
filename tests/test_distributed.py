"""Two CPU processes with Paddle's launcher equal one process with the same global batch."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle

from data_files import make_cifar_archive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")
# No random augmentation: both runs must see identical inputs.
PLAIN = "[{ToTensor: {}}, {Normalize: {mean: [0.5,0.5,0.5], std: [0.5,0.5,0.5]}}]"


def _overrides(archive, out, batch):
    over = [f"Global.output_dir={out}", "Global.epochs=2", "Global.progress_bar=False",
            "Global.use_visualdl=False", "Global.plot=False",
            f"DataLoader.Train.dataset.data_file={archive}", f"DataLoader.Eval.dataset.data_file={archive}",
            f"DataLoader.Train.dataset.transforms={PLAIN}", f"DataLoader.Train.batch_size={batch}",
            "DataLoader.Eval.batch_size=8", "DataLoader.Train.num_workers=0",
            "DataLoader.Eval.num_workers=0", "Arch.width=4", "Optimizer.lr.learning_rate=0.02"]
    return [a for o in over for a in ("-o", o)]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    archive = make_cifar_archive(str(tmp_path / "cifar-10-python.tar.gz"), n_train=128, n_test=30)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", CFG,
                             *_overrides(archive, tmp_path / "single", 64)],
                            capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    dist = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                           "--log_dir", str(tmp_path / "log"), os.path.join(ROOT, "tools", "train.py"),
                           "-c", CFG, *_overrides(archive, tmp_path / "dist", 32)],
                          capture_output=True, text=True, env=env, timeout=600)
    logs = "".join(open(tmp_path / "log" / f).read() for f in sorted(os.listdir(tmp_path / "log"))
                   if f.startswith("workerlog"))
    assert dist.returncode == 0, logs[-3000:]
    assert len([f for f in os.listdir(tmp_path / "log") if f.startswith("workerlog")]) == 2
    # Rank 1 is quiet: only rank 0 logs epochs.
    assert "epoch 2/2" in open(tmp_path / "log" / "workerlog.0").read()
    assert "epoch 2/2" not in open(tmp_path / "log" / "workerlog.1").read()

    ms = json.load(open(tmp_path / "single" / "metrics.json"))
    md = json.load(open(tmp_path / "dist" / "metrics.json"))
    # 128 samples / global batch 64 = 2 steps per epoch in both runs; every val sample counted once.
    assert ms["acc_record"]["val"]["iter"] == md["acc_record"]["val"]["iter"] == [2, 4]
    a = paddle.load(str(tmp_path / "single" / "final_model.pdparams"))
    b = paddle.load(str(tmp_path / "dist" / "final_model.pdparams"))
    # Gradients are averaged over ranks, so weights follow the single run; BN statistics are
    # per rank (8 vs 16 samples), hence a tolerance rather than equality.
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.att.fc1.weight", "fc.weight"):
        x, y = a[key].numpy(), b[key].numpy()
        assert np.linalg.norm(x - y) / np.linalg.norm(x) < 0.05, key
    np.testing.assert_array_equal(a["layer2.0.att.filters"].numpy(), b["layer2.0.att.filters"].numpy())
    for es, ed in zip(ms["epochs"], md["epochs"]):
        assert abs(es["train_loss"] - ed["train_loss"]) < 0.05
        assert abs(es["val_acc"] - ed["val_acc"]) <= 0.1
