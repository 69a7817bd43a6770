"""The training loop on generated CIFAR-format data with a tiny model."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from data_files import cifar_arrays, make_cifar_archive
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.engine import NonFiniteLossError, load_states, train
from orthonets_paddle.utils.io import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml")
PLAIN = "[{Resize: {size: 32}}, {ToTensor: {}}, {Normalize: {mean: [0.5,0.5,0.5], std: [0.5,0.5,0.5]}}]"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_cifar_archive(str(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"),
                              n_train=48, n_test=24)


def tiny(archive, out, *extra, epochs=2):
    return [f"Global.output_dir={out}", f"Global.epochs={epochs}", "Global.progress_bar=False",
            f"DataLoader.Train.dataset.data_file={archive}",
            f"DataLoader.Eval.dataset.data_file={archive}",
            "DataLoader.Train.sampler.batch_size=16", "DataLoader.Eval.sampler.batch_size=16",
            "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0",
            "Arch.width=4", "Optimizer.lr={name: Piecewise, decay_epochs: [1], values: [0.1, 0.01]}", *extra]


def test_one_run_writes_every_output(archive, tmp_path):
    out = tmp_path / "run"
    res = train(load_config(CFG, tiny(archive, out, "Global.save_interval=1")))
    names = set(os.listdir(out))
    for name in ("best_model.pdparams", "best_optimizer.pdopt", "final_model.pdparams",
                 "final_optimizer.pdopt", "latest.pdparams", "latest.pdopt", "latest.pdstates",
                 "epoch_1.pdparams", "epoch_2.pdstates", "metrics.json", "config.yaml",
                 "loss.png", "acc.png", "vdl"):
        assert name in names, name
    assert not [n for n in names if ".tmp" in n]
    assert os.listdir(out / "vdl")
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["acc_record"]["val"]["iter"] == [3, 6]  # 48 samples / 16 = 3 iterations
    assert len(metrics["epochs"]) == 2 and 0.0 <= metrics["epochs"][1]["val_acc"] <= 1.0
    assert metrics["epochs"][1]["lr"] == pytest.approx(0.01)  # MultiStepDecay at epoch 1
    assert metrics["best_acc"] == max(e["val_acc"] for e in metrics["epochs"]) == res["best_acc"]
    # The resolved config is saved and loads back as the same run.
    assert load_config(str(out / "config.yaml"))["Global"]["output_dir"] == str(out)
    # best_model holds the best epoch's weights: evaluating them reproduces best_acc.
    from orthonets_paddle.data import build_dataloader
    from orthonets_paddle.engine import build_loss, evaluate
    from orthonets_paddle.models import build_model_from_config
    cfg = load_config(str(out / "config.yaml"))
    model = build_model_from_config(cfg["Arch"])
    model.set_state_dict(paddle.load(str(out / "best_model.pdparams")))
    got = evaluate(model, build_dataloader(cfg["DataLoader"]["Eval"], "eval"), build_loss(cfg["Loss"]["Train"]))
    assert got["acc"] == pytest.approx(res["best_acc"])
    assert got["samples"] == 24


def test_train_loss_recorded_every_print_batch_step(archive, tmp_path):
    res = train(load_config(CFG, tiny(archive, tmp_path / "r", "Global.print_batch_step=2",
                                      "Global.use_visualdl=False", "Global.plot=False")))
    assert res["records"]["loss_record"]["train"]["iter"] == [2, 3, 4, 6]  # and each epoch's last


def test_log_line_counts_iterations_per_epoch_as_paddleclas(archive, tmp_path):
    """PaddleClas (ppcls/engine/train/train.py, utils.log_info) logs
    `[Train][Epoch {epoch_id}/{epochs}][Iter: {iter_id}/{max_iter}]` when
    `iter_id % print_batch_step == 0`, iter_id counting 0..max_iter-1 within each epoch and
    epoch_id from 1. 48 samples / batch 16 = 3 iterations, 2 epochs, print_batch_step 2."""
    import logging

    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("orthonets_paddle")
    logger.addHandler(handler)
    try:
        train(load_config(CFG, tiny(archive, tmp_path / "r", "Global.print_batch_step=2",
                                    "Global.use_visualdl=False", "Global.plot=False")))
    finally:
        logger.removeHandler(handler)
    steps = [ln.split("]lr:")[0] for ln in lines if ln.startswith("[Train]")]
    want = [f"[Train][Epoch {e}/2][Iter: {i}/3" for e in (1, 2) for i in range(3) if i % 2 == 0]
    assert steps == want


def test_training_steps_equal_plain_sgd_by_hand(archive, tmp_path):
    """Two epochs of train() (SGD, no momentum or weight decay, no augmentation, no
    shuffling, frozen_bn) against w <- w - lr * grad(mean loss of the batch), batch by batch,
    done here on the archive's arrays: the trainer's loop (clearing gradients, the loss
    it backpropagates, the rate of each step) must be exactly that."""
    from orthonets_paddle.engine.losses import build_loss
    from orthonets_paddle.models import build_model_from_config
    over = tiny(archive, tmp_path / "sgd", "Arch.norm=frozen_bn", "Global.plot=False",
                "Global.use_visualdl=False", f"DataLoader.Train.dataset.transform_ops={PLAIN}",
                "DataLoader.Train.sampler.shuffle=False",
                "Optimizer={name: SGD, lr: {name: MultiStepDecay, "
                "learning_rate: 0.2, milestones: [1], gamma: 0.5}}")
    cfg = load_config(CFG, over)
    paddle.seed(5)
    model = build_model_from_config(cfg["Arch"])
    start = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    paddle.save(model.state_dict(), str(tmp_path / "start.pdparams"))
    res = train(load_config(CFG, over + [f"Global.pretrained_model={tmp_path / 'start'}"]))
    trained = res["model"].state_dict()

    images, labels = cifar_arrays(10, 48, 0, "train")
    x = ((images.astype(np.float32) / 255 - 0.5) / 0.5).transpose(0, 3, 1, 2)
    loss_fn = build_loss(cfg["Loss"]["Train"])
    model.train()
    params = {k: p for k, p in model.named_parameters() if not p.stop_gradient}
    for epoch, lr in ((0, 0.2), (1, 0.1)):  # x0.5 from epoch 1 on
        for i in range(0, 48, 16):
            loss = loss_fn(model(paddle.to_tensor(x[i:i + 16])), paddle.to_tensor(labels[i:i + 16]))
            grads = paddle.grad(loss, list(params.values()))
            with paddle.no_grad():
                for p, g in zip(params.values(), grads):
                    p.set_value(p.numpy() - lr * g.numpy())
    moved = 0
    for key, w in model.state_dict().items():
        want = w.numpy().astype(np.float64) - start[key]
        got = trained[key].numpy().astype(np.float64) - start[key]
        if not np.any(want):
            np.testing.assert_array_equal(got, 0.0, err_msg=key)
            continue
        moved += 1
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        # Measured: at most 3e-5 (inputs differ from the loader's by an ulp); bugs: O(1).
        assert rel < 1e-3, f"{key}: update differs by {rel:.2e} relative"
    assert moved > 40


_KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from orthonets_paddle.data import datasets
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.engine import train
orig = datasets.Cifar10.__getitem__
count = [0]
def dying(self, i):
    count[0] += 1
    if self.mode == "train" and count[0] == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, like a power cut
    return orig(self, i)
datasets.Cifar10.__getitem__ = dying
train(load_config({cfg!r}, {overrides!r}))
"""


def _run_script(kill_at, overrides):
    # Every run in its own process with the same thread count: float sums depend on it.
    script = _KILLER.format(root=ROOT, kill_at=kill_at, cfg=CFG, overrides=overrides)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=60)


def test_resume_after_sigkill_matches_uninterrupted_run(archive, tmp_path):
    # The seed's random augmentations stay on: resume must restore the RNG states too.
    over = lambda out, *e: tiny(archive, out, "Global.use_visualdl=False", "Global.plot=False",
                                "Global.print_batch_step=2", *e, epochs=3)
    full = tmp_path / "full"
    proc = _run_script(-1, over(full))
    assert proc.returncode == 0, proc.stderr[-2000:]

    killed = tmp_path / "killed"
    # 48 train + 24 eval samples per epoch: sample 100 is in the middle of epoch 2's training.
    proc = _run_script(100, over(killed))
    assert proc.returncode == -9, proc.stderr[-2000:]
    states = load_states(str(killed / "latest.pdstates"))
    assert states["epoch"] == 0 and not (killed / "final_model.pdparams").exists()

    proc = _run_script(-1, over(killed, f"Global.checkpoints={killed}"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from" in proc.stdout and "continuing at epoch 2" in proc.stdout
    a = paddle.load(str(full / "final_model.pdparams"))
    b = paddle.load(str(killed / "final_model.pdparams"))
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-6, atol=1e-7, err_msg=k)
    ra, rb = json.load(open(full / "metrics.json")), json.load(open(killed / "metrics.json"))
    assert_same_history(rb, ra)
    assert len(ra["loss_record"]["train"]["iter"]) == 6  # every 2nd of 9 iterations, each epoch's last


def assert_same_history(got, want):
    """metrics.json of a resumed run equals the uninterrupted run's: best accuracy and
    epoch, every record, every epoch row (the lr column is the schedule position)."""
    assert (got["best_acc"], got["best_epoch"]) == (want["best_acc"], want["best_epoch"])
    for rec in ("loss_record", "acc_record"):
        for split in ("train", "val"):
            assert got[rec][split]["iter"] == want[rec][split]["iter"], (rec, split)
            key = rec.split("_")[0]
            np.testing.assert_allclose(got[rec][split][key], want[rec][split][key], rtol=1e-6,
                                       err_msg=f"{rec} {split}")
    assert len(got["epochs"]) == len(want["epochs"])
    for rg, rw in zip(got["epochs"], want["epochs"]):
        assert set(rg) == set(rw)
        for k in rw:
            if k != "train_images_per_sec":  # wall-clock
                assert rg[k] == pytest.approx(rw[k], rel=1e-6), (rw["epoch"], k)


def test_resume_restores_best_accuracy_records_and_schedule(archive, tmp_path):
    # After epoch 1 the rate drops to 1e-7 (milestone 1, gamma 1e-6) and frozen_bn keeps
    # the running statistics, so epochs 2 and 3 score what epoch 1 scored: the best epoch
    # stays 1 only if the resumed run knows epoch 1's accuracy (a tie is no improvement).
    common = ("Arch.norm=frozen_bn", "Optimizer.lr.values=[0.1,1e-7]", "Global.plot=False",
              "Global.use_visualdl=False", "Global.print_batch_step=1")
    full = train(load_config(CFG, tiny(archive, tmp_path / "full", *common, epochs=3)))
    assert full["best_epoch"] == 1
    accs = full["records"]["acc_record"]["val"]["acc"]
    assert accs[0] == accs[1] == accs[2]  # the premise: no later epoch does better
    out = tmp_path / "resumed"
    train(load_config(CFG, tiny(archive, out, *common, epochs=1)))
    res = train(load_config(CFG, tiny(archive, out, *common, f"Global.checkpoints={out}", epochs=3)))
    assert (res["best_acc"], res["best_epoch"]) == (full["best_acc"], 1)
    assert_same_history(json.load(open(out / "metrics.json")),
                        json.load(open(tmp_path / "full" / "metrics.json")))
    # best_model holds epoch 1's weights in both runs, final_model epoch 3's.
    for name in ("best_model", "final_model"):
        a = paddle.load(str(tmp_path / "full" / f"{name}.pdparams"))
        b = paddle.load(str(out / f"{name}.pdparams"))
        for k in a:
            np.testing.assert_array_equal(b[k].numpy(), a[k].numpy(), err_msg=f"{name} {k}")


def test_lr_used_in_training_follows_the_schedule(archive, tmp_path, monkeypatch):
    """The rate each optimizer.step of a real train() uses: 1 warm-up epoch from 0, then
    the half cosine to 0 at the end of epoch 3 (3 iterations per epoch)."""
    used = []
    step = paddle.optimizer.Momentum.step

    def recording_step(self, *args, **kwargs):
        used.append(self.get_lr())
        return step(self, *args, **kwargs)

    monkeypatch.setattr(paddle.optimizer.Momentum, "step", recording_step)
    from orthonets_paddle.engine.logger import VisualDLWriter
    scalars = {}
    monkeypatch.setattr(VisualDLWriter, "add_scalar",
                        lambda self, tag, value, step: scalars.setdefault(tag, []).append((step, value)))
    res = train(load_config(CFG, tiny(archive, tmp_path / "r",
                                      "Optimizer.lr={name: Cosine, learning_rate: 0.1, warmup_epoch: 1}",
                                      "Global.plot=False", "Global.print_batch_step=1", epochs=3)))
    ipe, total = 3, 9
    want = [0.1 * i / ipe if i < ipe else
            0.05 * (1 + np.cos(np.pi * (i - ipe) / (total - ipe))) for i in range(total)]
    np.testing.assert_allclose(used, want, rtol=1e-9, atol=1e-15)
    # VisualDL's train/lr at step s is the rate iteration s (1-based) used.
    steps, logged = zip(*scalars["train/lr"])
    assert list(steps) == list(range(1, total + 1))
    np.testing.assert_allclose(logged, want, rtol=1e-9, atol=1e-15)
    # Each epoch row logs the rate its last iteration used.
    logged = [row["lr"] for row in res["records"]["epochs"]]
    np.testing.assert_allclose(logged, [want[2], want[5], want[8]], rtol=1e-9, atol=1e-15)


def test_resume_from_missing_checkpoint_says_which_key(archive, tmp_path):
    with pytest.raises(RuntimeError, match="Global.checkpoints takes a run's output directory"):
        train(load_config(CFG, tiny(archive, tmp_path / "r", f"Global.checkpoints={tmp_path}/nope")))


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "latest.pdparams")
    good = {"w": paddle.ones([3])}
    atomic_write(path, lambda tmp: paddle.save(good, tmp))

    def broken_save(obj, target, *a, **k):
        with open(target, "wb") as f:
            f.write(b"\x80\x04partial")  # a half-written file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(paddle, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, lambda tmp: paddle.save({"w": paddle.zeros([3])}, tmp))
    monkeypatch.undo()
    np.testing.assert_array_equal(paddle.load(path)["w"].numpy(), np.ones(3))
    assert os.listdir(tmp_path) == ["latest.pdparams"]


def test_pretrained_with_other_class_count_skips_classifier(archive, tmp_path, caplog):
    from orthonets_paddle.models import build_model_from_config
    src = build_model_from_config({"name": "orthonet18", "class_num": 100, "stem": "cifar", "width": 4})
    path = str(tmp_path / "pre.pdparams")
    paddle.save(src.state_dict(), path)
    res = train(load_config(CFG, tiny(archive, tmp_path / "ft", f"Global.pretrained_model={path[:-9]}",
                                      "Global.plot=False", "Optimizer.lr.values=[0.0,0.0]", epochs=1)))
    model = res["model"]
    assert model.fc.weight.shape == [32, 10]
    np.testing.assert_array_equal(model.layer1[0].conv1.weight.numpy(), src.layer1[0].conv1.weight.numpy())
    np.testing.assert_array_equal(model.layer2[1].att.filters.numpy(), src.layer2[1].att.filters.numpy())


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(archive, tmp_path):
    out = tmp_path / "nan"
    train(load_config(CFG, tiny(archive, out, "Global.plot=False", epochs=1)))
    before = open(out / "latest.pdparams", "rb").read()
    diverge = "Optimizer.lr.values=[1e30,1e30]"  # weights overflow within a few steps
    with pytest.raises(NonFiniteLossError, match="loss is (nan|inf) (at|after) epoch 2(, within iterations 4-[56])?.*latest"):
        train(load_config(CFG, tiny(archive, out, f"Global.checkpoints={out}", diverge)))
    assert open(out / "latest.pdparams", "rb").read() == before
    assert load_states(str(out / "latest.pdstates"))["epoch"] == 0


def test_amp_is_refused_on_cpu(archive, tmp_path):
    with pytest.raises(RuntimeError, match="AMP.use_amp needs a GPU"):
        train(load_config(CFG, tiny(archive, tmp_path / "amp", "AMP.use_amp=True", "Global.device=cpu")))


def test_cli_rejects_misspelt_override_before_doing_anything(tmp_path):
    out = tmp_path / "never"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", CFG,
                           "-o", f"Global.output_dir={out}", "-o", "Global.epoch=1"],
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 2
    assert "did you mean epochs" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_trains_one_epoch(archive, tmp_path):
    out = tmp_path / "cli"
    args = [a for o in tiny(archive, out, epochs=1) for a in ("-o", o)]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", CFG, *args],
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 1/1" in proc.stdout and "best val acc" in proc.stdout
    assert (out / "final_model.pdparams").exists()


def test_missing_cifar_archive_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nothere"):
        train(load_config(CFG, tiny(str(tmp_path / "nothere.tar.gz"), tmp_path / "x")))


_FINAL_KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.engine import train
orig, seen = os.replace, [0]
def replace(src, dst, *a, **k):  # SIGKILL around the n-th move of NAME into place
    hit = os.path.basename(str(dst)) == {name!r}
    seen[0] += hit
    if hit and seen[0] == {n} and {before!r}:
        os.kill(os.getpid(), signal.SIGKILL)
    out = orig(src, dst, *a, **k)
    if hit and seen[0] == {n}:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
os.replace = replace
train(load_config({cfg!r}, {overrides!r}))
"""


@pytest.mark.parametrize("name,n,before", [("final_model.pdparams", 1, True),
                                           ("latest.pdstates", 2, False)])  # the 2nd epoch's
def test_a_run_killed_after_its_last_checkpoint_finishes_on_resume(archive, tmp_path, name, n, before):
    """SIGKILL once the last epoch's latest.* is saved but before final_model.* is in place:
    the resume writes final_model (the last epoch's weights) and the full metrics, and a
    sweep counts the run as finished."""
    from orthonets_paddle.experiments.sweep import run_status
    out = tmp_path / "run"
    over = tiny(archive, out, "Global.use_visualdl=False", "Global.plot=False")
    script = _FINAL_KILLER.format(root=ROOT, name=name, n=n, before=before, cfg=CFG, overrides=over)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=100)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert run_status(str(out), 2) != "finished"
    res = train(load_config(CFG, over + [f"Global.checkpoints={out}"]))
    assert run_status(str(out), 2) == "finished"
    final, latest = (paddle.load(str(out / f"{p}.pdparams")) for p in ("final_model", "latest"))
    for k in latest:
        np.testing.assert_array_equal(final[k].numpy(), latest[k].numpy(), err_msg=k)
    assert load_states(str(out / "latest.pdstates"))["epoch"] == 1
    assert [r["epoch"] for r in json.load(open(out / "metrics.json"))["epochs"]] == [1, 2]
    assert res["best_epoch"] >= 1
