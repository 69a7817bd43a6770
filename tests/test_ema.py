"""EMA weights (``EMA: {decay}``) and gradient accumulation (``Global.update_freq``), against
oracles from their definitions: an EMA computed here in numpy over the weights the model
really had after each optimizer step; N accumulated small batches equal one large batch."""
import json
import os

import numpy as np
import paddle
import pytest

from data_files import make_cifar_archive
from orthonets_paddle.engine import env as env_mod
from orthonets_paddle.engine import load_states, train
from orthonets_paddle.engine.config import load_config
from orthonets_paddle.engine.ema import ModelEMA
from orthonets_paddle.engine.logger import VisualDLWriter, new_records
from orthonets_paddle.engine.losses import build_loss
from orthonets_paddle.engine.trainer import train_one_epoch
from orthonets_paddle.models import build_model_from_config
from test_train import CFG, PLAIN, _run_script, tiny

ARCH = {"name": "orthonet18", "class_num": 10, "stem": "cifar", "width": 4}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_cifar_archive(str(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"),
                              n_train=48, n_test=24)


def _numpy_state(model):
    return {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}


def _ema_by_hand(snapshots, decay):
    """ema_0 = w_0; ema_t = decay * ema_{t-1} + (1 - decay) * w_t, in float64."""
    ema = dict(snapshots[0])
    for w in snapshots[1:]:
        ema = {k: decay * ema[k] + (1 - decay) * w[k] for k in ema}
    return ema


# ----------------------------------------------------------------------------- EMA
def test_ema_update_is_the_exponential_average_of_the_weights():
    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.BatchNorm1D(4))
    ema, decay = ModelEMA(model, 0.75), 0.75
    rng = np.random.default_rng(1)
    snapshots = [_numpy_state(model)]
    for _ in range(5):  # known weight sequences, BN running statistics included
        for v in model.state_dict().values():
            v.set_value(rng.standard_normal(v.shape).astype("float32"))
        ema.update()
        snapshots.append(_numpy_state(model))
    want = _ema_by_hand(snapshots, decay)
    got = ema.module.state_dict()
    assert set(got) == set(want) and any("_mean" in k for k in got)  # BN stats averaged too
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.allclose(got["0.weight"].numpy(), snapshots[-1]["0.weight"])  # not a copy


def test_ema_leaves_fixed_buffers_bit_identical():
    paddle.seed(0)
    model = build_model_from_config(ARCH)
    filters = model.layer2[0].att.filters.numpy().copy()
    ema = ModelEMA(model, 0.9999)
    for _ in range(3):
        model.conv1.weight.set_value(model.conv1.weight.numpy() + 1.0)
        ema.update()
    np.testing.assert_array_equal(ema.module.layer2[0].att.filters.numpy(), filters)
    assert not np.array_equal(ema.module.conv1.weight.numpy(), model.conv1.weight.numpy())


def _over(archive, out, *extra, epochs=2):
    return tiny(archive, out, "Global.plot=False", "Global.use_visualdl=False", *extra, epochs=epochs)


def test_trained_ema_equals_the_hand_computed_average(archive, tmp_path, monkeypatch):
    """latest.ema.pdparams after two epochs = numpy's EMA over the weights after each
    optimizer step (recorded here); best_model_ema holds the EMA of its best epoch."""
    snapshots = []
    real_step = paddle.optimizer.Momentum.step

    def recording_step(self, *a, **k):
        out = real_step(self, *a, **k)
        snapshots.append({k: v.numpy().astype(np.float64) for k, v in recorded.state_dict().items()})
        return out

    import orthonets_paddle.engine.trainer as trainer_mod
    real_ema = trainer_mod.ModelEMA

    def first_ema(model, decay):  # the model train() builds: its state is recorded at each step
        nonlocal recorded
        recorded = model
        snapshots.append(_numpy_state(model))
        return real_ema(model, decay)

    recorded = None
    monkeypatch.setattr(paddle.optimizer.Momentum, "step", recording_step)
    monkeypatch.setattr(trainer_mod, "ModelEMA", first_ema)
    out = tmp_path / "run"
    res = train(load_config(CFG, _over(archive, out, "EMA.decay=0.8")))
    assert len(snapshots) == 1 + 2 * 3  # the start, then 3 steps per epoch
    want = _ema_by_hand(snapshots, 0.8)
    got = paddle.load(str(out / "latest.ema.pdparams"))
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k], rtol=1e-5, atol=1e-6, err_msg=k)
    rows = json.load(open(out / "metrics.json"))["epochs"]
    accs = [r["val_acc_ema"] for r in rows]
    best = int(np.argmax(accs))  # first maximum: a tie is no improvement
    want_best = _ema_by_hand(snapshots[: 1 + 3 * (best + 1)], 0.8)
    got_best = paddle.load(str(out / "best_model_ema.pdparams"))
    for k in want_best:
        np.testing.assert_allclose(got_best[k].numpy(), want_best[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # best_model still follows the trained weights' own accuracy
    assert res["best_acc"] == max(r["val_acc"] for r in rows)
    assert load_states(str(out / "latest.pdstates"))["ema"]["best_acc"] == max(accs)


def test_resume_after_sigkill_gives_the_same_ema_weights(archive, tmp_path):
    over = lambda out, *e: _over(archive, out, "EMA.decay=0.7", "Global.print_batch_step=2",
                                 *e, epochs=3)
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert _run_script(-1, over(full)).returncode == 0
    # mid epoch 2: per epoch 48 train + 2 x 24 eval (trained and EMA weights) samples
    proc = _run_script(120, over(killed))
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert load_states(str(killed / "latest.pdstates"))["epoch"] == 0
    proc = _run_script(-1, over(killed, f"Global.checkpoints={killed}"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("latest.ema.pdparams", "best_model_ema.pdparams", "final_model.pdparams"):
        a, b = paddle.load(str(full / name)), paddle.load(str(killed / name))
        assert list(a) == list(b)
        for k in a:
            np.testing.assert_array_equal(b[k].numpy(), a[k].numpy(), err_msg=f"{name} {k}")
    ra, rb = (json.load(open(d / "metrics.json"))["epochs"] for d in (full, killed))
    assert [r["val_acc_ema"] for r in rb] == [r["val_acc_ema"] for r in ra]


def test_ema_file_is_part_of_the_checkpoint_set(archive, tmp_path):
    """A latest.ema.pdparams from another save is refused like a mixed .pdparams."""
    from orthonets_paddle.engine.checkpoint import CheckpointError, load_checkpoint
    out = tmp_path / "run"
    train(load_config(CFG, _over(archive, out, "EMA.decay=0.5", "Global.save_interval=1")))
    assert load_checkpoint(str(out))["ema"]  # read back with the set
    os.replace(out / "epoch_1.ema.pdparams", out / "latest.ema.pdparams")
    with pytest.raises(CheckpointError, match="parts of different saves"):
        load_checkpoint(str(out))


# ----------------------------------------------------------------------------- update_freq
def _linear_epoch(batches, freq, lr=0.5, scaler=None):
    paddle.seed(7)
    model = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(12, 5))
    opt = paddle.optimizer.Momentum(lr, momentum=0.9, parameters=model.parameters())
    cfg = {"Global": {"epochs": 1, "progress_bar": False, "print_batch_step": 1, "update_freq": freq,
                      "output_dir": "/nonexistent"}, "AMP": {"use_amp": False}}
    state = {"global_step": 0}
    train_one_epoch(model, batches, build_loss([{"CELoss": {"weight": 1.0}}]), opt,
                    paddle.optimizer.lr.StepDecay(lr, step_size=1000), 0,
                    env_mod.RunEnv(device="cpu"), new_records(), state, cfg, VisualDLWriter(None),
                    scaler)
    return _numpy_state(model), state["global_step"]


def _data(n, b, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n * b, 3, 2, 2)).astype("float32")
    y = rng.integers(0, 5, n * b).astype("int64")
    return x, y


def test_accumulated_small_batches_equal_one_large_batch():
    """No BatchNorm, AMP off: 3 groups of 2 batches of 4 = 3 batches of 8; a 7th batch
    (an incomplete group) is not drawn."""
    x, y = _data(7, 4)
    small = [(paddle.to_tensor(x[i:i + 4]), paddle.to_tensor(y[i:i + 4])) for i in range(0, 28, 4)]
    large = [(paddle.to_tensor(x[i:i + 8]), paddle.to_tensor(y[i:i + 8])) for i in range(0, 24, 8)]
    drawn = []

    class Loader(list):  # counts the batches the epoch draws
        def __iter__(self):
            for batch in list.__iter__(self):
                drawn.append(1)
                yield batch

    got, steps = _linear_epoch(Loader(small), 2)
    want, want_steps = _linear_epoch(large, 1)
    assert steps == want_steps == 3 and len(drawn) == 6  # no gradient left over
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_accumulation_through_a_grad_scaler_unscales_once_per_step(monkeypatch):
    """The AMP path's structure on the CPU (float32, a GradScaler forced on as in
    test_amp): scale(loss / N).backward() per batch, step/update once per group, equals
    the large batch without a scaler. float16 itself needs a GPU (unverified here)."""
    from test_amp import _enabled_scaler
    x, y = _data(6, 4, seed=2)
    small = [(paddle.to_tensor(x[i:i + 4]), paddle.to_tensor(y[i:i + 4])) for i in range(0, 24, 4)]
    large = [(paddle.to_tensor(x[i:i + 8]), paddle.to_tensor(y[i:i + 8])) for i in range(0, 24, 8)]
    scaler = _enabled_scaler(monkeypatch, init_loss_scaling=1024.0, use_dynamic_loss_scaling=False)
    got, steps = _linear_epoch(small, 2, scaler=scaler)
    want, _ = _linear_epoch(large, 1)
    assert steps == 3
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_update_freq_larger_than_the_epoch_is_one_line(archive, tmp_path):
    with pytest.raises(ValueError, match="Global.update_freq is 4 but the training loader yields 3 "
                                         "batch.*lower Global.update_freq"):
        train(load_config(CFG, _over(archive, tmp_path / "r", "Global.update_freq=4")))


def test_train_with_update_freq_equals_the_large_batch_run(archive, tmp_path):
    """train(): batch 8 x update_freq 2 = batch 16, SGD, frozen BN (no batch statistics),
    no augmentation or shuffling; the rate halves after epoch 1, so a schedule counting
    batches instead of optimizer steps would differ."""
    common = ("Arch.norm=frozen_bn", f"DataLoader.Train.dataset.transform_ops={PLAIN}",
              "DataLoader.Train.sampler.shuffle=False",
              "Optimizer={name: SGD, lr: {name: MultiStepDecay, learning_rate: 0.2, "
              "milestones: [1], gamma: 0.5}}")
    paddle.seed(5)
    start = tmp_path / "start.pdparams"
    paddle.save(build_model_from_config(ARCH).state_dict(), str(start))
    runs = {}
    for name, extra in (("large", ()), ("acc", ("DataLoader.Train.sampler.batch_size=8",
                                                "Global.update_freq=2"))):
        res = train(load_config(CFG, _over(archive, tmp_path / name, *common, *extra,
                                           f"Global.pretrained_model={start}")))
        runs[name] = _numpy_state(res["model"])
    lrs = [r["lr"] for r in json.load(open(tmp_path / "acc" / "metrics.json"))["epochs"]]
    assert lrs == [0.2, 0.1]
    for k, want in runs["large"].items():
        np.testing.assert_allclose(runs["acc"][k], want, rtol=1e-4, atol=1e-6, err_msg=k)


def test_resume_of_a_run_without_ema_says_where_the_ema_starts(archive, tmp_path, caplog):
    import logging
    # Epoch 2 trains at rate 0 with frozen BN: the weights stay the resumed ones, and so must
    # an EMA that starts from them (not from the weights before the resume).
    common = ("Arch.norm=frozen_bn", "Optimizer.lr.values=[0.1,0.0]")
    out = tmp_path / "run"
    train(load_config(CFG, _over(archive, out, *common, epochs=1)))
    logger = logging.getLogger("orthonets_paddle")
    logger.addHandler(caplog.handler)
    try:
        train(load_config(CFG, _over(archive, out, *common, "EMA.decay=0.5", f"Global.checkpoints={out}")))
    finally:
        logger.removeHandler(caplog.handler)
    assert "has no EMA weights (its run had no EMA section); the EMA starts from the resumed weights" in caplog.text
    ema, weights = paddle.load(str(out / "latest.ema.pdparams")), paddle.load(str(out / "latest.pdparams"))
    for k in weights:
        np.testing.assert_array_equal(ema[k].numpy(), weights[k].numpy(), err_msg=k)
