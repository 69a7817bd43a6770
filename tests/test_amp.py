"""The device-independent parts of the GPU path, on the CPU: float32 weights files from a
float16 model, O2's cast keeps the banks float32, GradScaler state through a checkpoint,
host syncs per step, rank seeding."""
import random

import numpy as np
import paddle
import pytest

from orthonets_paddle.engine import amp as amp_mod
from orthonets_paddle.engine import env as env_mod
from orthonets_paddle.engine.checkpoint import load_checkpoint, save_checkpoint
from orthonets_paddle.engine.logger import VisualDLWriter, new_records
from orthonets_paddle.engine.trainer import _states, evaluate, train_one_epoch
from orthonets_paddle.engine.losses import build_loss
from orthonets_paddle.models import build_model_from_config

import importlib
_AMP_INIT = importlib.import_module("paddle.amp.auto_cast").amp_initialize
ARCH = {"name": "orthonet18", "class_num": 10, "stem": "cifar", "width": 4}


def _model():
    paddle.seed(3)
    return build_model_from_config(ARCH)


def _batches(n, b=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(paddle.to_tensor(rng.standard_normal((b, 3, 32, 32)).astype("float32")),
             paddle.to_tensor(rng.integers(0, 10, b).astype("int64"))) for _ in range(n)]


def test_o2_cast_keeps_banks_float32_and_casts_the_rest():
    """decorate(O2) is a no-op on the CPU, so this runs the cast it calls
    (_AMP_INIT) with the layers our decorate excludes."""
    model = _model()
    banks = {k: v.numpy().copy() for k, v in model.state_dict().items() if k.endswith("filters")}
    assert banks
    _AMP_INIT([model], "float16", amp_mod.fp32_layers(model))
    sd = model.state_dict()
    for k, v in banks.items():
        assert sd[k].dtype == paddle.float32, k
        np.testing.assert_array_equal(sd[k].numpy(), v)  # bit-exact, not fp16-rounded
    assert model.layer1[0].conv1.weight.dtype == paddle.float16
    assert model.fc.weight.dtype == paddle.float16
    # Without the exclusion the banks are rounded to float16 (what the old code did).
    other = _model()
    _AMP_INIT([other], "float16", None)
    assert other.layer1[0].att.filters.dtype == paddle.float16


def test_float16_model_is_saved_float32_and_evaluates_in_float32(tmp_path):
    model = _model()
    ref = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    half = _model()
    half.to(dtype="float16")
    save_checkpoint(str(tmp_path / "best_model"), half)
    saved = paddle.load(str(tmp_path / "best_model.pdparams"))
    for k, v in saved.items():
        if paddle.is_floating_point(v):
            assert v.dtype == paddle.float32, k
            # the float16 values, widened exactly
            np.testing.assert_array_equal(v.numpy(), ref[k].astype(np.float16).astype(np.float32))
    fresh = build_model_from_config(ARCH)
    fresh.set_state_dict(saved)
    assert all(v.dtype == paddle.float32 for v in fresh.state_dict().values()
               if paddle.is_floating_point(v))
    data = _batches(2)
    got = evaluate(fresh, data, build_loss([{"CELoss": {"epsilon": 0.0}}]))
    # oracle: the same float32 model's logits by hand
    fresh.eval()
    with paddle.no_grad():
        logits = np.concatenate([fresh(x).numpy() for x, _ in data])
    labels = np.concatenate([y.numpy() for _, y in data])
    assert got["acc"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    assert got["loss"] == pytest.approx(np.mean(lse - logits[np.arange(len(labels)), labels]),
                                        rel=1e-5)


def _enabled_scaler(monkeypatch, **kw):
    """GradScaler disables itself off the GPU; pretend the place is a GPU while building."""
    real = paddle.amp.grad_scaler._dygraph_tracer

    class Place:
        def __init__(self, p):
            self.p = p

        def is_gpu_place(self):
            return True

        def __getattr__(self, name):
            return getattr(self.p, name)

    class Tracer:
        def __init__(self, t):
            self.t = t
            self._expected_place = Place(t._expected_place)

        def __getattr__(self, name):
            return getattr(self.t, name)

    monkeypatch.setattr(paddle.amp.grad_scaler, "_dygraph_tracer", lambda: Tracer(real()))
    scaler = paddle.amp.GradScaler(**kw)
    monkeypatch.setattr(paddle.amp.grad_scaler, "_dygraph_tracer", real)
    return scaler


def test_grad_scaler_state_round_trips_through_latest(tmp_path, monkeypatch):
    model = _model()
    opt = paddle.optimizer.Momentum(0.1, parameters=model.parameters())
    sched = paddle.optimizer.lr.StepDecay(0.1, step_size=1000)
    amp = {"use_amp": True, "scale_loss": 512.0, "use_dynamic_loss_scaling": True}
    scaler = _enabled_scaler(monkeypatch, init_loss_scaling=amp["scale_loss"])
    scaler._scale = paddle.to_tensor(np.array([2048.0], np.float32))
    scaler._incr_count, scaler._decr_count = 7, 1
    state = {"best_acc": 0.5, "best_epoch": 0, "global_step": 3}
    save_checkpoint(str(tmp_path / "latest"), model, opt,
                    _states(0, state, new_records(), sched, scaler))
    st = load_checkpoint(str(tmp_path))["states"]
    other = _enabled_scaler(monkeypatch, init_loss_scaling=amp["scale_loss"])
    other.load_state_dict(st["scaler"])
    assert other._scale.numpy().tolist() == [2048.0]
    assert (other._incr_count, other._decr_count) == (7, 1)


class _Counter:
    """Counts Tensor -> host conversions (each one waits for the device)."""

    def __init__(self, monkeypatch):
        self.n = 0
        for name in ("__float__", "__int__", "__bool__", "item", "numpy", "tolist"):
            orig = getattr(paddle.Tensor, name)

            def wrapped(t, *a, _orig=orig, **k):
                self.n += 1
                return _orig(t, *a, **k)

            monkeypatch.setattr(paddle.Tensor, name, wrapped)


def _epoch(model, data, k, state=None, loss_fn=None):
    opt = paddle.optimizer.SGD(0.01, parameters=model.parameters())
    cfg = {"Global": {"epochs": 1, "progress_bar": False, "print_batch_step": k,
                      "output_dir": "/nonexistent"}, "AMP": {"use_amp": False}}
    loss_fn = loss_fn or build_loss([{"CELoss": {"epsilon": 0.1}}])
    return train_one_epoch(model, data, loss_fn, opt,
                           paddle.optimizer.lr.StepDecay(0.01, step_size=1000), 0,
                           env_mod.RunEnv(device="cpu"), new_records(),
                           state or {"global_step": 0}, cfg, VisualDLWriter(None))


def test_host_syncs_only_at_print_steps(monkeypatch):
    model, data = _model(), _batches(12)
    counter = _Counter(monkeypatch)
    out = _epoch(model, data, 4)
    # 12 steps, print every 4th (iterations 0, 4, 8): 3 print syncs + 1 at the epoch's end;
    # the loss records at global steps 4, 8, 12 wait on the device for those syncs
    assert counter.n <= 12 / 4 + 1, counter.n
    assert 0.0 <= out["acc"] <= 1.0 and np.isfinite(out["loss"])


def test_epoch_means_equal_the_per_step_values():
    data = _batches(5, seed=4)
    model = _model()
    records = new_records()
    opt = paddle.optimizer.SGD(0.0, parameters=model.parameters())  # weights stay
    loss_fn = build_loss([{"CELoss": {"epsilon": 0.1}}])
    cfg = {"Global": {"epochs": 1, "progress_bar": False, "print_batch_step": 1,
                      "output_dir": "/x"}, "AMP": {"use_amp": False}}
    out = train_one_epoch(model, data, loss_fn, opt, paddle.optimizer.lr.StepDecay(0.0, step_size=1000), 0,
                          env_mod.RunEnv(device="cpu"), records, {"global_step": 0}, cfg,
                          VisualDLWriter(None))
    model.train()
    losses, hits = [], 0
    with paddle.no_grad():
        for x, y in data:
            logits = model(x)
            losses.append(float(loss_fn(logits, y)))
            hits += int((logits.numpy().argmax(1) == y.numpy()).sum())
    np.testing.assert_allclose(records["loss_record"]["train"]["loss"], losses, rtol=1e-5)
    assert out["loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    assert out["acc"] == pytest.approx(hits / 20)


def test_nan_loss_is_caught_at_the_next_print_step_naming_the_range():
    from orthonets_paddle.engine import NonFiniteLossError
    ce, calls = build_loss([{"CELoss": {"epsilon": 0.1}}]), []

    def loss_fn(logits, labels):  # step 5's loss is NaN, the others finite
        calls.append(1)
        return ce(logits, labels) * (float("nan") if len(calls) == 5 else 1.0)

    # Print steps are iterations 0, 3, 6 of the epoch (PaddleClas's iter_id % 3 == 0), i.e.
    # global steps 1, 4, 7: the NaN of step 5 is found at step 7, after a clean check at 4.
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, within iterations 5-7"):
        _epoch(_model(), _batches(8), 3, loss_fn=loss_fn)
    assert len(calls) == 7  # stopped at the print step after it


def test_ranks_draw_different_augmentations_and_the_same_order():
    from orthonets_paddle.data.loader import _permutation
    draws, orders = [], []
    for rank in (0, 1):
        env_mod.seed_everything(7, rank)
        draws.append((random.random(), float(np.random.uniform())))
        orders.append(_permutation(50, True, 7, 2))
        paddle_draw = paddle.rand([3]).numpy()
        draws[-1] += tuple(paddle_draw)
    assert draws[0][:2] != draws[1][:2]  # Python and numpy: per rank
    assert draws[0][2:] == draws[1][2:]  # Paddle's: the same initial weights everywhere
    np.testing.assert_array_equal(orders[0], orders[1])
    # oracle: seed + rank
    random.seed(8)
    np.random.seed(8)
    assert draws[1][:2] == (random.random(), float(np.random.uniform()))


def test_resume_gives_each_rank_its_own_saved_stream():
    env_mod.seed_everything(1, 0)
    main = env_mod.rng_state()
    ranks = []
    for r in (0, 1):
        env_mod.seed_everything(1, r)
        ranks.append({"python": random.getstate(), "numpy": np.random.get_state()})
    st = {"rng": main, "rank_rng": ranks}
    assert env_mod.rank_rng(st, 1)["python"] == ranks[1]["python"]
    single = {"rng": main, "rank_rng": None, "epoch": 0}  # a 1-process checkpoint on 2 ranks:
    assert env_mod.rank_rng(single, 0)["python"] == main["python"]
    assert env_mod.rank_rng(single, 1)["python"] != main["python"]  # its own (issue 28)
