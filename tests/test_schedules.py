"""Learning-rate schedules, as the optimizer uses them, against their closed forms.

The oracles below are written from the recipes, not from ``engine/optim.py``:
- the seed notebook: lr 0.1, multiplied by 0.1 at epochs 30, 60 and 90, stepped per epoch;
- the authors' ImageNet recipe (configs/orthonet50_imagenet.yaml): linear warm-up from 0 to
  0.1 over 5 epochs, then a half cosine down to 0 at the end of epoch 100, per iteration;
- a plain cosine (configs/orthonet18_fashionmnist.yaml): the half cosine from iteration 0.
The rate is read from the optimizer (``optimizer.get_lr()``) right before each real
``optimizer.step()``, and once from the weight update itself.
"""
import math
import os

import numpy as np
import paddle
import pytest

from orthonets_paddle.engine.config import load_config
from orthonets_paddle.engine.optim import build_lr, build_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IPE = 4  # iterations per epoch in these tests (the cosine's half and quarter are iterations)


def seed_multistep(it, ipe=IPE, base=0.1, milestones=(30, 60, 90), gamma=0.1):
    epoch = it // ipe  # the seed steps its scheduler once per epoch
    return base * gamma ** sum(1 for m in milestones if epoch >= m)


def warmup_cosine(it, ipe=IPE, base=0.1, warmup_epochs=5, epochs=100, eta_min=0.0, start=0.0):
    warm = warmup_epochs * ipe
    if it < warm:
        return start + (base - start) * it / warm
    t = (it - warm) / (epochs * ipe - warm)  # 0 after the warm-up, 1 after the last iteration
    return eta_min + (base - eta_min) * 0.5 * (1.0 + math.cos(math.pi * t))


def lrs_used(optimizer_cfg, epochs, ipe=IPE):
    """Train a tiny layer for ``epochs * ipe`` iterations in the trainer's order
    (forward, backward, optimizer.step, scheduler.step) and record the rate each
    optimizer.step used."""
    paddle.seed(0)
    layer = paddle.nn.Linear(2, 1)
    opt, sched = build_optimizer(optimizer_cfg, layer.parameters(), ipe, epochs)
    x = paddle.ones([4, 2])
    used = []
    for _ in range(epochs * ipe):
        loss = layer(x).mean()
        loss.backward()
        used.append(opt.get_lr())
        opt.step()
        opt.clear_grad()
        sched.step()
    return np.array(used)


def _optimizer_section(config):
    return load_config(os.path.join(ROOT, "configs", config))["Optimizer"]


def test_seed_multistep_changes_per_epoch_at_30_60_90():
    cfg = _optimizer_section("orthonet18_cifar10.yaml")
    epochs = load_config(os.path.join(ROOT, "configs", "orthonet18_cifar10.yaml"))["Global"]["epochs"]
    assert epochs == 100
    used = lrs_used(cfg, epochs)
    want = np.array([seed_multistep(i) for i in range(epochs * IPE)])
    np.testing.assert_allclose(used, want, rtol=1e-12)
    # Chosen iterations, by hand: the last iteration of epoch 30 (1-based) still uses 0.1,
    # the first of epoch 31 uses 0.01; epoch 61 uses 0.001, epoch 91 and the last 1e-4.
    for it, lr in ((0, 0.1), (30 * IPE - 1, 0.1), (30 * IPE, 0.01), (60 * IPE - 1, 0.01),
                   (60 * IPE, 0.001), (90 * IPE, 1e-4), (100 * IPE - 1, 1e-4)):
        assert used[it] == pytest.approx(lr, rel=1e-12), it
    # Constant inside every epoch: the rate moves only at epoch boundaries.
    assert (used.reshape(epochs, IPE) == used.reshape(epochs, IPE)[:, :1]).all()


def test_imagenet_recipe_is_linear_warmup_then_half_cosine():
    cfg = _optimizer_section("orthonet50_imagenet.yaml")
    assert cfg["lr"]["warmup_epoch"] == 5 and cfg["lr"]["name"] == "Cosine"
    used = lrs_used(cfg, 100)
    want = np.array([warmup_cosine(i) for i in range(100 * IPE)])
    np.testing.assert_allclose(used, want, rtol=1e-9, atol=1e-15)
    warm, total = 5 * IPE, 100 * IPE
    assert used[0] == 0.0
    assert used[warm // 4] == pytest.approx(0.1 / 4, rel=1e-12)  # a quarter of the way up
    assert used[warm] == pytest.approx(0.1, rel=1e-12)  # top, right after the warm-up
    # Half-way through the cosine part the rate is half the peak; a quarter in, 0.1 * (1 +
    # cos(pi/4)) / 2 = 0.08536 (cos(pi t/2) would give 0.0962).
    mid = warm + (total - warm) // 2
    assert used[mid] == pytest.approx(0.05, rel=1e-12)
    quarter = warm + (total - warm) // 4
    assert used[quarter] == pytest.approx(0.1 * (1 + math.cos(math.pi / 4)) / 2, rel=1e-12)
    assert 0 < used[-1] < 1e-5  # the last step is one step from the end of the cosine


def test_plain_cosine_from_the_first_iteration():
    cfg = _optimizer_section("orthonet18_fashionmnist.yaml")
    assert cfg["lr"]["name"] == "Cosine" and not cfg["lr"]["warmup_epoch"]
    epochs = 20
    used = lrs_used(cfg, epochs)
    want = np.array([warmup_cosine(i, warmup_epochs=0, epochs=epochs) for i in range(epochs * IPE)])
    np.testing.assert_allclose(used, want, rtol=1e-9, atol=1e-15)
    assert used[0] == 0.1 and used[epochs * IPE // 2] == pytest.approx(0.05, rel=1e-9)


def test_cosine_eta_min_warmup_start_and_constant():
    opt = {"name": "SGD", "lr": {"name": "Cosine", "learning_rate": 0.4, "eta_min": 0.01,
                                 "warmup_epoch": 2, "warmup_start_lr": 0.1}}
    used = lrs_used(opt, 10)
    want = [warmup_cosine(i, base=0.4, warmup_epochs=2, epochs=10, eta_min=0.01, start=0.1)
            for i in range(10 * IPE)]
    np.testing.assert_allclose(used, want, rtol=1e-9)
    const = lrs_used({"name": "SGD", "lr": {"name": "Constant", "learning_rate": 0.3}}, 4)
    np.testing.assert_array_equal(const, np.full(4 * IPE, 0.3))
    # Warm-up, then the seed's multi-step: the milestones stay epoch numbers of the whole run.
    ms = lrs_used({"name": "SGD", "lr": {"name": "MultiStepDecay", "learning_rate": 0.1,
                                         "milestones": [3, 5], "gamma": 0.5, "warmup_epoch": 1}}, 6)
    want = [0.1 * i / IPE if i < IPE else seed_multistep(i, milestones=(3, 5), gamma=0.5)
            for i in range(6 * IPE)]
    np.testing.assert_allclose(ms, want, rtol=1e-12)


def test_cosine_stays_at_eta_min_after_the_last_iteration():
    sched = build_lr({"name": "Cosine", "learning_rate": 0.1, "eta_min": 0.001}, IPE, 2)
    rates = []
    for _ in range(4 * IPE):
        rates.append(sched())
        sched.step()
    assert rates[2 * IPE] == pytest.approx(0.001, rel=1e-12)  # the end of epoch 2
    assert rates[2 * IPE:] == [rates[2 * IPE]] * (2 * IPE)  # no second cycle


def test_the_weight_update_uses_the_scheduled_rate():
    """SGD without weight decay: w' = w - lr * g, so the rate is read off the weights."""
    epochs = 8
    opt_cfg = {"name": "SGD", "lr": {"name": "Cosine", "learning_rate": 0.5, "warmup_epoch": 2}}
    paddle.seed(0)
    layer = paddle.nn.Linear(3, 1, bias_attr=False)
    opt, sched = build_optimizer(opt_cfg, layer.parameters(), IPE, epochs)
    c = np.array([[1.0], [2.0], [-4.0]], np.float64)  # loss = x @ w with x = c^T: grad = c
    x = paddle.to_tensor(c.T.astype("float32"))
    for it in range(epochs * IPE):
        before = layer.weight.numpy().astype(np.float64)
        layer(x).sum().backward()
        opt.step()
        opt.clear_grad()
        sched.step()
        rate = (before - layer.weight.numpy()) / c  # float32 weights: about 1e-6 absolute
        want = warmup_cosine(it, base=0.5, warmup_epochs=2, epochs=epochs)
        np.testing.assert_allclose(rate, want, rtol=1e-4, atol=2e-6, err_msg=f"iteration {it}")


def test_schedule_state_resumes_exactly():
    cfg = {"name": "Cosine", "learning_rate": 0.1, "warmup_epoch": 5}
    a = build_lr(cfg, IPE, 100)
    for _ in range(40):
        a.step()
    b = build_lr(cfg, IPE, 100)
    b.set_state_dict(a.state_dict())
    for _ in range(100):
        assert b() == a()
        a.step()
        b.step()
    # A state without the nested schedule (the warm-up's own keys only) resumes too.
    c = build_lr(cfg, IPE, 100)
    c.set_state_dict({"last_epoch": a.last_epoch, "last_lr": a.last_lr})
    for _ in range(10):
        a.step()
        c.step()
        assert c() == a()


def test_bad_schedule_values_are_errors():
    with pytest.raises(ValueError, match="warmup_start_lr"):
        build_lr({"name": "Cosine", "learning_rate": 0.1, "warmup_epoch": 1,
                  "warmup_start_lr": 0.2}, IPE, 10)
    with pytest.raises(ValueError, match="milestones must be distinct positive"):
        build_lr({"name": "MultiStepDecay", "learning_rate": 0.1, "milestones": [3, 3]}, IPE, 10)
    with pytest.raises(ValueError, match="gamma"):
        build_lr({"name": "MultiStepDecay", "learning_rate": 0.1, "milestones": [3],
                  "gamma": 2.0}, IPE, 10)
    with pytest.raises(ValueError, match="valid: Piecewise, MultiStepDecay, Cosine, Constant"):
        build_lr({"name": "Step", "learning_rate": 0.1}, IPE, 10)
    with pytest.raises(ValueError, match="one more value than decay_epochs"):
        build_lr({"name": "Piecewise", "decay_epochs": [3, 6], "values": [0.1, 0.01]}, IPE, 10)
    with pytest.raises(ValueError, match="increasing positive epochs"):
        build_lr({"name": "Piecewise", "decay_epochs": [6, 3], "values": [0.1, 0.01, 0.001]},
                 IPE, 10)
    with pytest.raises(ValueError, match="no batches"):
        build_lr({"name": "Constant", "learning_rate": 0.1}, 0, 10)


def test_piecewise_is_paddleclas_and_equals_the_seed_multistep():
    """PaddleClas's Piecewise (decay_epochs, values; values[0] is the start, learning_rate
    ignored) per iteration: the seed's 0.1 x0.1 at 30/60/90 gives the seed's rates."""
    pw = lrs_used({"name": "SGD", "lr": {"name": "Piecewise", "learning_rate": 9.0,
                                         "decay_epochs": [3, 5], "values": [0.1, 0.05, 0.025]}}, 6)
    want = [0.1 if i < 3 * IPE else 0.05 if i < 5 * IPE else 0.025 for i in range(6 * IPE)]
    np.testing.assert_allclose(pw, want, rtol=1e-12)
    seed = lrs_used({"name": "SGD", "lr": {"name": "Piecewise", "decay_epochs": [30, 60, 90],
                                           "values": [0.1, 0.01, 0.001, 0.0001]}}, 100)
    np.testing.assert_allclose(seed, [seed_multistep(i) for i in range(100 * IPE)], rtol=1e-12)
    # Warm-up (PaddleClas: linear from warmup_start_lr to values[0]), then the pieces.
    warm = lrs_used({"name": "SGD", "lr": {"name": "Piecewise", "decay_epochs": [3],
                                           "values": [0.2, 0.02], "warmup_epoch": 1}}, 4)
    want = [0.2 * i / IPE if i < IPE else (0.2 if i < 3 * IPE else 0.02) for i in range(4 * IPE)]
    np.testing.assert_allclose(warm, want, rtol=1e-12)


def test_l2_regularizer_adds_coeff_times_w_to_the_gradient():
    """regularizer {name: L2, coeff}: SGD's step is lr * (g + coeff * w)."""
    paddle.seed(0)
    layer = paddle.nn.Linear(3, 1, bias_attr=False)
    opt, _ = build_optimizer({"name": "SGD", "lr": {"name": "Constant", "learning_rate": 0.5},
                              "regularizer": {"name": "L2", "coeff": 0.1}},
                             layer.parameters(), IPE, 1)
    w = layer.weight.numpy().astype(np.float64)
    c = np.array([[1.0], [2.0], [-4.0]])
    layer(paddle.to_tensor(c.T.astype("float32"))).sum().backward()
    opt.step()
    np.testing.assert_allclose(layer.weight.numpy(), w - 0.5 * (c + 0.1 * w), rtol=1e-5, atol=1e-6)
