"""The loss against the seed notebook's LabelSmoothingCrossEntropy, written in numpy.

The seed's expression: with p = softmax(logits) over K classes,
    loss = (1 - eps) * nll + eps * mean_k(-log p_k)
i.e. the target is (1 - eps) * one_hot + eps / K (the smoothing term is eps / K, not
eps / (K - 1)), averaged over the batch.
"""
import numpy as np
import paddle
import pytest

from orthonets_paddle.engine.losses import LabelSmoothingCrossEntropy, build_loss


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def seed_loss(logits, labels, eps):
    logp = log_softmax(np.asarray(logits, np.float64))
    nll = -logp[np.arange(len(labels)), labels]
    smooth = -logp.mean(axis=1)
    return float(((1 - eps) * nll + eps * smooth).mean())


def other_convention(logits, labels, eps):
    """The eps / (K - 1) smoothing (the true class gets exactly 1 - eps)."""
    logp = log_softmax(np.asarray(logits, np.float64))
    k = logp.shape[1]
    target = np.full(logp.shape, eps / (k - 1))
    target[np.arange(len(labels)), labels] = 1 - eps
    return float(-(target * logp).sum(axis=1).mean())


LOGITS = np.random.default_rng(0).normal(0, 3, (7, 10)).astype(np.float32)
LABELS = np.array([0, 3, 3, 9, 1, 5, 7])


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_matches_the_seed_expression(eps):
    got = float(build_loss([{"CELoss": {"weight": 1.0, "epsilon": eps}}])(paddle.to_tensor(LOGITS),
                                                               paddle.to_tensor(LABELS)))
    assert got == pytest.approx(seed_loss(LOGITS, LABELS, eps), rel=1e-6)
    if eps:  # the two conventions differ by far more than the tolerance
        assert abs(seed_loss(LOGITS, LABELS, eps) - other_convention(LOGITS, LABELS, eps)) > 1e-3


def test_hand_computed_value():
    # Two classes, logits (0, 0): p = (1/2, 1/2), -log p = log 2 for both, so the loss is
    # log 2 for any eps; logits (log 3, 0): p = (3/4, 1/4).
    loss = LabelSmoothingCrossEntropy(0.2)
    assert float(loss(paddle.zeros([1, 2]), paddle.to_tensor([1]))) == pytest.approx(np.log(2))
    got = float(loss(paddle.to_tensor([[np.log(3.0), 0.0]], dtype="float32"), paddle.to_tensor([0])))
    want = 0.8 * -np.log(0.75) + 0.2 * (-np.log(0.75) - np.log(0.25)) / 2
    assert got == pytest.approx(want, rel=1e-6)


def test_gradient_is_softmax_minus_target_over_batch():
    x = paddle.to_tensor(LOGITS, stop_gradient=False)
    build_loss([{"CELoss": {"epsilon": 0.1}}])(x, paddle.to_tensor(LABELS)).backward()
    p = np.exp(log_softmax(LOGITS.astype(np.float64)))
    target = np.full(p.shape, 0.1 / 10)
    target[np.arange(7), LABELS] += 0.9
    np.testing.assert_allclose(x.grad.numpy(), (p - target) / 7, atol=1e-6)


def test_label_shapes_and_errors():
    loss = build_loss([{"CELoss": {"epsilon": 0.1}}])
    flat = float(loss(paddle.to_tensor(LOGITS), paddle.to_tensor(LABELS)))
    column = float(loss(paddle.to_tensor(LOGITS), paddle.to_tensor(LABELS[:, None])))
    assert flat == column  # labels [N] and [N, 1] are the same labels
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\)"):
        build_loss([{"CELoss": {"epsilon": 1.0}}])
    with pytest.raises(ValueError, match="valid: CELoss"):
        build_loss([{"FocalLoss": {}}])
    with pytest.raises(ValueError, match="PaddleClas's lists"):
        build_loss(dict(name="CELoss", epsilon=0.1))  # the old form names the new one


def test_soft_labels_weights_and_smoothing_as_paddleclas():
    """Mixup's soft labels [B, K]: CE against them; with epsilon the soft target is smoothed
    too, (1 - eps) * y + eps / K (PaddleClas's CELoss); weights scale and losses add."""
    rng = np.random.default_rng(1)
    soft = rng.dirichlet(np.ones(10), size=7).astype(np.float32)
    logp = log_softmax(LOGITS.astype(np.float64))
    for eps in (0.0, 0.1):
        target = (1 - eps) * soft + eps / 10
        want = float(-(target * logp).sum(axis=1).mean())
        got = float(build_loss([{"CELoss": {"epsilon": eps}}])(paddle.to_tensor(LOGITS),
                                                               paddle.to_tensor(soft)))
        assert got == pytest.approx(want, rel=1e-6)
    two = build_loss([{"CELoss": {"weight": 0.5}}, {"CELoss": {"weight": 2.0, "epsilon": 0.1}}])
    got = float(two(paddle.to_tensor(LOGITS), paddle.to_tensor(LABELS)))
    assert got == pytest.approx(0.5 * seed_loss(LOGITS, LABELS, 0) + 2 * seed_loss(LOGITS, LABELS, 0.1),
                                rel=1e-6)
