"""The attention layer against the paper's formula, written here in numpy:

    s = sum_hw K * X,  g = sigmoid(W2 relu(W1 s)),  att(X) = X * g[:, :, None, None]

in every mode the layer runs in: dygraph (train and no_grad), to_static and export."""
import numpy as np
import paddle
import pytest

from orthonets_paddle.layers import ChannelAttention, FILTER_BANKS, orthogonal
from orthonets_paddle.layers import attention
from orthonets_paddle.models import build_model

EPS32 = float(np.finfo(np.float32).eps)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _adaptive_pool(x, out_h, out_w):
    """Adaptive average pooling from its definition (bin i: floor(i*n/m) .. ceil((i+1)*n/m))."""
    n, c, h, w = x.shape
    out = np.empty((n, c, out_h, out_w), dtype=np.float64)
    for i in range(out_h):
        h0, h1 = (i * h) // out_h, -((-(i + 1) * h) // out_h)
        for j in range(out_w):
            w0, w1 = (j * w) // out_w, -((-(j + 1) * w) // out_w)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def _spread(att, s_std=1.0, seed=0):
    """Excitation weights that give clearly different gates per channel (fresh ones can
    give all gates 0.5 when the hidden ReLU is off, which any rescale would pass).
    ``s_std``: the typical size of the squeezed values."""
    rng = np.random.default_rng(seed)
    for fc, scale in ((att.fc1, 1.0 / s_std), (att.fc2, 2.0)):  # logits ~ N(0, ~2)
        fan_in = fc.weight.shape[0]
        fc.weight.set_value((scale / np.sqrt(fan_in) * rng.standard_normal(fc.weight.shape)).astype("float32"))


def _spread_model(model, x):
    """``_spread`` every attention of ``model``, scaled to the squeezes it sees on ``x``."""
    seen = {}
    atts = [layer for name, layer in model.named_sublayers() if name.endswith(".att")]
    hooks = [att.register_forward_pre_hook(lambda layer, inp: seen.__setitem__(id(layer), inp[0]))
             for att in atts]
    with paddle.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    for k, att in enumerate(atts):
        xin = seen[id(att)]
        _spread(att, _squeeze_std(att, xin), seed=k)


def _squeeze_std(att, x):
    bank = att.bank_for(x.shape[2], x.shape[3]).numpy()
    return float((x.numpy() * bank).sum(axis=(2, 3)).std()) + 1e-6


def _check_x_times_gate(out, x, gate):
    """``out / x`` is one value per (b, c), inside (0, 1), equal to ``gate``."""
    assert np.ptp(gate) > 0.1  # the gates differ, so a wrong rescale cannot pass
    seen = np.abs(x) > 1e-3  # the ratio is defined (and well conditioned) there
    ratio = np.where(seen, out / np.where(seen, x, 1), np.nan)
    assert (np.nanmax(ratio, axis=(2, 3)) - np.nanmin(ratio, axis=(2, 3))).max() < 1e-5
    assert ((ratio[seen] > 0) & (ratio[seen] < 1)).all()
    np.testing.assert_allclose(out, x * gate[:, :, None, None], rtol=1e-5, atol=1e-6)


def _gate(att, x):
    """Oracle gate [b, c] in float64 from the layer's filters and weights. SENet's
    ``avg`` is global average pooling at any size; the others pool to the filter size."""
    x = np.asarray(x, np.float64)
    if att.squeeze == "avg":
        s = x.mean(axis=(2, 3))
    else:
        if x.shape[2:] != att.size:
            x = _adaptive_pool(x, *att.size)
        s = (x * att.filters.numpy().astype(np.float64)).sum(axis=(2, 3))
    h = np.maximum(s @ att.fc1.weight.numpy(), 0.0)
    return _sigmoid(h @ att.fc2.weight.numpy())


@pytest.mark.parametrize("squeeze", sorted(FILTER_BANKS))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_att_is_x_times_a_gate_constant_over_hw_and_inside_0_1(squeeze, mode):
    paddle.seed(0)
    att = ChannelAttention(32, 4, squeeze=squeeze, seed=3, reduction=4)
    _spread(att)
    getattr(att, mode)()
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((3, 32, 4, 4)).astype("float32"))
    x.stop_gradient = mode == "eval"
    _check_x_times_gate(att(x).numpy(), x.numpy(), _gate(att, x.numpy()))


@pytest.mark.parametrize("size,shape", [(4, (8, 8)), (16, (14, 14)), (7, (10, 13)), (8, (5, 9))])
@pytest.mark.parametrize("squeeze", ["ortho", "avg"])
def test_other_sizes_are_pooled_to_the_filters_first(size, shape, squeeze):
    # Shrinking, enlarging (the authors' 256-px models at 224) and uneven bins; SENet's
    # average is global pooling at any size.
    paddle.seed(1)
    att = ChannelAttention(16, size, squeeze=squeeze)
    x = paddle.randn([2, 16, *shape])
    np.testing.assert_allclose(att.excitation(x).numpy(), _gate(att, x.numpy()), rtol=1e-5, atol=1e-6)


def test_a_reloaded_bank_is_used_at_other_sizes_at_once():
    att = ChannelAttention(16, 4, squeeze="ortho", seed=0)
    x = paddle.randn([2, 16, 6, 6])
    att(x)
    att.set_state_dict({"filters": paddle.to_tensor(orthogonal(16, 4, 4, seed=9))})
    np.testing.assert_allclose(att.excitation(x).numpy(), _gate(att, x.numpy()), rtol=1e-5, atol=1e-6)


def test_buffer_is_persistable_not_a_parameter():
    att = ChannelAttention(32, 4, squeeze="ortho", seed=5)
    np.testing.assert_array_equal(att.state_dict()["filters"].numpy(), orthogonal(32, 4, 4, seed=5))
    assert sorted(n for n, _ in att.named_parameters()) == ["fc1.weight", "fc2.weight"]
    assert att.fc1.weight.shape == [32, 2] and att.fc1.bias is None and att.fc2.bias is None
    # SENet's constant bank is not saved: SE checkpoints have no filters.
    assert "filters" not in ChannelAttention(32, 4, squeeze="avg").state_dict()


def test_hidden_width_is_rounded():
    assert ChannelAttention(24, 2).fc1.weight.shape == [24, 2]  # round(1.5) = 2
    assert ChannelAttention(8, 2).fc1.weight.shape == [8, 1]    # round(0.5) = 0 -> at least 1


def test_bad_bank_shape_and_reduction_are_clear_errors():
    with pytest.raises(ValueError, match="does not fit channels=8"):
        ChannelAttention(8, 4, bank=np.zeros((8, 3, 3), np.float32))
    with pytest.raises(ValueError, match="reduction must be positive"):
        ChannelAttention(8, 4, reduction=0)


@pytest.mark.parametrize("name,where", [("orthonet18", "post"), ("orthonet_mod_50", "mod"),
                                        ("fcanet50", "post")])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_hook_on_block_att_sees_x_times_gate(name, where, mode):
    paddle.seed(0)
    model = build_model(name, 5, stem="cifar", width=8, reduction=2)  # hidden 4-16: some alive
    getattr(model, mode)()
    block = model.layer1[1]  # no downsample: the identity is the block's input
    seen, block_io = {}, {}
    block.att.register_forward_post_hook(lambda layer, inp, out: seen.update(x=inp[0], out=out))
    block.register_forward_post_hook(lambda layer, inp, out: block_io.update(x=inp[0], out=out))
    x = paddle.randn([2, 3, 32, 32])
    model(x)
    bank = block.att.filters.numpy()
    _spread(block.att, float((seen["x"].numpy() * bank).sum(axis=(2, 3)).std()))
    model(x)
    xin, out = seen["x"].numpy(), seen["out"].numpy()
    _check_x_times_gate(out, xin, _gate(block.att, xin))
    if where == "post":  # the block owns the residual: relu(att(out) + identity)
        np.testing.assert_allclose(block_io["out"].numpy(),
                                   np.maximum(out + block_io["x"].numpy(), 0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("squeeze", sorted(FILTER_BANKS))
@pytest.mark.parametrize("shape", [(3, 32, 4, 4), (2, 5, 7, 3), (1, 7, 1, 1)])
def test_dygraph_squeeze_equals_the_formula_values_and_gradients(squeeze, shape):
    b, c, h, w = shape
    bank = paddle.to_tensor(FILTER_BANKS[squeeze](c, h, w, 1).astype("float32"))
    grad = paddle.to_tensor(np.random.default_rng(2).standard_normal((b, c)).astype("float32"))
    xin = np.random.default_rng(1).standard_normal(shape).astype("float32")
    res = []
    for fn in (attention.squeeze, lambda x, k: attention.squeeze(x, k, training=True)):
        x = paddle.to_tensor(xin)
        x.stop_gradient = False
        s = fn(x, bank)
        (s * grad).sum().backward()
        res.append((s.numpy(), x.grad.numpy()))
    oracle = (xin.astype(np.float64) * bank.numpy()).sum(axis=(2, 3))
    gx = grad.numpy()[:, :, None, None] * bank.numpy()[None]  # d s / d x = K
    for s, g in res:
        np.testing.assert_allclose(s, oracle, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g, gx, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["orthonet18", "se_resnet18"])
def test_static_graph_with_dynamic_height_and_width(name):
    # Sizes unknown when tracing (detection exports): the attention pools explicitly, which
    # equals the fold the dygraph model uses (and SENet's global mean).
    paddle.seed(0)
    model = build_model(name, 5, stem="cifar", width=4, reduction=2)
    model.eval()
    _spread_model(model, paddle.randn([2, 3, 40, 40]))
    xs = [paddle.randn([2, 3, side, side]) for side in (32, 40, 28)]
    with paddle.no_grad():
        refs = [model(x).numpy() for x in xs]  # dygraph, before to_static converts model
    spec = paddle.static.InputSpec([None, 3, None, None], "float32")
    static = paddle.jit.to_static(model, input_spec=[spec], full_graph=True)
    for x, ref in zip(xs, refs):
        with paddle.no_grad():
            np.testing.assert_allclose(static(x).numpy(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("squeeze", sorted(FILTER_BANKS))
@pytest.mark.parametrize("shape", [(3, 8, 4, 4), (2, 5, 7, 3), (1, 7, 1, 1)])
def test_traced_squeeze_equals_the_formula_values_and_gradients(squeeze, shape, training):
    # Traced for inference (export): a full-size depthwise conv; for training (to_static):
    # the GEMM.
    b, c, h, w = shape
    bank = paddle.to_tensor(FILTER_BANKS[squeeze](c, h, w, 1).astype("float32"))
    grad = np.random.default_rng(2).standard_normal((b, c)).astype("float32")
    xin = np.random.default_rng(1).standard_normal(shape).astype("float32")

    def loss(x, g):
        s = attention.squeeze(x, bank, training)
        return s, (s * g).sum()

    traced = paddle.jit.to_static(loss, full_graph=True)
    x = paddle.to_tensor(xin)
    x.stop_gradient = False
    s, total = traced(x, paddle.to_tensor(grad))
    total.backward()
    oracle = (xin.astype(np.float64) * bank.numpy()).sum(axis=(2, 3))
    np.testing.assert_allclose(s.numpy(), oracle, rtol=1e-5, atol=1e-5)
    gx = grad[:, :, None, None].astype(np.float64) * bank.numpy()[None]  # d s / d x = K
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("squeeze", sorted(FILTER_BANKS))
@pytest.mark.parametrize("shape", [(3, 32, 4, 4), (2, 32, 7, 5), (1, 32, 1, 1)])
def test_traced_inference_gate_equals_the_formula(squeeze, shape, bias):
    # Exported graphs squeeze with a depthwise conv; the gate and x * gate must be the
    # formula's, biases included.
    paddle.seed(0)
    att = ChannelAttention(32, 4, squeeze=squeeze, seed=3, reduction=4, bias=bias)
    _spread(att)
    if bias:
        for lin in (att.fc1, att.fc2):
            lin.bias.set_value(np.random.default_rng(5).uniform(-1, 1, lin.bias.shape).astype("float32"))
    att.eval()
    xin = np.random.default_rng(1).standard_normal(shape).astype("float32")
    x64 = xin.astype(np.float64)
    if squeeze == "avg":
        s = x64.mean(axis=(2, 3))
    else:
        pooled = x64 if shape[2:] == att.size else _adaptive_pool(x64, *att.size)
        s = (pooled * att.filters.numpy()).sum(axis=(2, 3))
    b1, b2 = (att.fc1.bias.numpy(), att.fc2.bias.numpy()) if bias else (0.0, 0.0)
    gate = _sigmoid(np.maximum(s @ att.fc1.weight.numpy() + b1, 0.0) @ att.fc2.weight.numpy() + b2)
    spec = paddle.static.InputSpec([None, *shape[1:]], "float32")

    def gate_of(x):
        return att.excitation(x)

    traced_gate = paddle.jit.to_static(gate_of, input_spec=[spec], full_graph=True)
    traced = paddle.jit.to_static(att, input_spec=[spec], full_graph=True)
    with paddle.no_grad():
        x = paddle.to_tensor(xin)
        np.testing.assert_allclose(traced_gate(x).numpy(), gate, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(traced(x).numpy(), xin * gate[:, :, None, None], rtol=1e-5, atol=1e-6)


def test_one_plain_path_no_private_api_ctypes_or_in_place_tails():
    # The forward is the formula in public ops in every mode; a second path (a PyLayer, an
    # in-place tail, a private kernel) would be a branch nobody runs on a GPU.
    import pathlib
    import re
    root = pathlib.Path(attention.__file__).parents[1]
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "_C_ops" not in text and not re.search(r"\bctypes\b", text), path
        if path.parent.name in ("layers", "models"):
            assert "PyLayer" not in text, path
            assert not re.search(r"\.(multiply|add|relu|scale|subtract)_\(|F\.relu_\(", text), path
