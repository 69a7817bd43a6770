"""The attention layer against the paper's formula, written here in numpy:

    s = sum_hw K * X,  g = sigmoid(W2 relu(W1 s)),  att(X) = X * g[:, :, None, None]

and the fused training path (layers/fused.py, its lean backward) against autograd and a float64
oracle, with saturated gates and with its public-ops fallback."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from orthonets_paddle.layers import ChannelAttention, FILTER_BANKS, orthogonal
from orthonets_paddle.layers import attention, fused
from orthonets_paddle.models import resnet as resnet_mod
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


def test_fold_matrices_are_cached_per_size_and_follow_reloaded_filters():
    att = ChannelAttention(16, 4, squeeze="ortho", seed=0)
    x = paddle.randn([2, 16, 6, 6])
    att(x)
    cached = att._fold[(6, 6)]
    att(x)
    assert att._fold[(6, 6)] is cached and list(att._fold) == [(6, 6)]
    # A reloaded bank (other seed) is used at once: only the pooling matrices are cached.
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


# ---- the fused training path ------------------------------------------------------


def _oracle_grads(x, z, identity, grad):
    """float64 gradients of sum(grad * relu(x * sigmoid(z) + identity)) by hand."""
    g = _sigmoid(z)[:, :, None, None]
    pre = x * g + (0.0 if identity is None else identity)
    gm = grad * (pre > 0)
    gz = (gm * x).sum(axis=(2, 3)) * (g * (1 - g))[:, :, 0, 0]
    return gm * g, gz, gm


def _run(fn, x, z, identity, grad):
    xt, zt = paddle.to_tensor(x), paddle.to_tensor(z)
    xt.stop_gradient = zt.stop_gradient = False
    it = None
    if identity is not None:
        it = paddle.to_tensor(identity)
        it.stop_gradient = False
    out = fn(xt, zt, it)
    (out * paddle.to_tensor(grad)).sum().backward()
    return out.numpy(), xt.grad.numpy(), zt.grad.numpy(), None if it is None else it.grad.numpy()


def _autograd(x, z, identity):
    out = x * F.sigmoid(z).unsqueeze([2, 3])
    return F.relu(out if identity is None else out + identity)


def _lean(x, z, identity):
    return fused._GateAddReLU.apply(x, z) if identity is None else fused._GateAddReLU.apply(x, z, identity)


@pytest.mark.parametrize("with_identity", [True, False])
@pytest.mark.parametrize("relu_grad", ["private", "public"])
def test_lean_gate_add_relu_matches_autograd_with_saturated_gates(with_identity, relu_grad, monkeypatch):
    if relu_grad == "public":  # the fallback used when Paddle's private kernel is missing
        monkeypatch.setattr(fused, "relu_grad", fused.relu_grad_public)
    rng = np.random.default_rng(0)
    b, c, h, w = 2, 6, 4, 4
    # Gates of 1e-4, 1 - 1e-4 and ordinary ones, per channel.
    logit = np.log(1e-4 / (1 - 1e-4))
    z = np.tile(np.array([logit, -logit, 0.3, -2.0, logit, -logit], np.float32), (b, 1))
    x = (3 * rng.standard_normal((b, c, h, w))).astype(np.float32)
    identity = rng.standard_normal((b, c, h, w)).astype(np.float32) if with_identity else None
    grad = rng.standard_normal((b, c, h, w)).astype(np.float32)

    out_a, gx_a, gz_a, gi_a = _run(_autograd, x, z, identity, grad)
    out_l, gx_l, gz_l, gi_l = _run(_lean, x, z, identity, grad)
    np.testing.assert_array_equal(out_l > 0, out_a > 0)
    np.testing.assert_allclose(out_l, out_a, rtol=1e-6, atol=1e-6)
    ox, oz, oi = _oracle_grads(x.astype(np.float64), z.astype(np.float64),
                               None if identity is None else identity.astype(np.float64), grad)
    # grad x and grad identity are masked copies of grad (times g): float32 rounding only.
    np.testing.assert_allclose(gx_l, ox, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(gx_l, gx_a, rtol=1e-6, atol=1e-12)
    if with_identity:
        np.testing.assert_array_equal(gi_l, gi_a)
        np.testing.assert_array_equal(gi_l, oi)
    # grad z: the lean path forms sum(grad * (out - identity)) from float32 out and
    # identity, so its error is bounded by a few ulps of sum |grad| (|out| + |identity|)
    # (cancellation when x * g << identity), plus the rounding of 1 - g near 1 - 1e-4
    # (an ulp of g, relative to sum |grad x g|). 8 eps covers both with margin; an
    # error in the formula (a lost (1 - g), a division by g) is orders larger.
    gm = grad * (out_a > 0)
    ident = 0.0 if identity is None else np.abs(identity)
    bound = 8 * EPS32 * ((np.abs(gm) * (np.abs(out_a) + ident)).sum(axis=(2, 3))
                         + np.abs(gm * x * _sigmoid(z)[:, :, None, None]).sum(axis=(2, 3)))
    assert (np.abs(gz_l - oz) <= bound).all(), np.abs(gz_l - oz) / bound
    assert (np.abs(gz_a - oz) <= bound).all()  # autograd meets the same bound
    # Where nothing cancels (no identity) and 1 - g is exact enough (g not near 1), the
    # lean gradient is accurate relative to itself.
    if not with_identity:
        ok = _sigmoid(z) < 0.99
        np.testing.assert_allclose(gz_l[ok], oz[ok], rtol=1e-5, atol=0)


def test_private_relu_grad_falls_back_to_public_ops(monkeypatch):
    rng = np.random.default_rng(2)
    out = paddle.to_tensor(np.maximum(rng.standard_normal((3, 4, 5)), 0).astype("float32"))
    grad = paddle.to_tensor(rng.standard_normal((3, 4, 5)).astype("float32"))
    expected = grad.numpy() * (out.numpy() > 0)
    np.testing.assert_array_equal(fused.relu_grad_public(out, grad).numpy(), expected)
    np.testing.assert_array_equal(fused.relu_grad(out, grad).numpy(), expected)

    def broken(out, grad):
        raise AttributeError("module 'paddle._C_ops' has no attribute 'relu_grad'")
    monkeypatch.setattr(fused, "_relu_grad_private", broken)
    assert fused._pick_relu_grad() is fused.relu_grad_public
    monkeypatch.setattr(fused, "_relu_grad_private", lambda out, grad: grad)  # disagrees
    assert fused._pick_relu_grad() is fused.relu_grad_public


def _plain_attend_add_relu(att, x, identity=None):
    """The block's attention from the layer's own ops (autograd backward)."""
    out = att(x)
    return F.relu(out if identity is None else out + identity)


@pytest.mark.parametrize("name,size,kw", [
    ("orthonet18", 32, {}), ("orthonet_mod_50", 32, {}), ("orthonet50", 40, {}),
    ("orthonet18", 27, {"squeeze": "random"}), ("se_resnet18", 32, {}), ("fcanet18", 24, {})])
def test_fused_training_path_gives_the_plain_values_and_gradients(name, size, kw, monkeypatch):
    # BN on running statistics: with batch statistics of a width-8 model at batch 4 the
    # input gradient is ill-conditioned (measured: a 1e-6 relative change of the input
    # moves it by 4%), so the two paths' rounding differences would not be comparable.
    # Train-mode BN is covered block by block below. Sizes 40, 27, 24 fold the pooling.
    def run(plain):
        with monkeypatch.context() as m:
            if plain:
                m.setattr(resnet_mod, "attend_add_relu", _plain_attend_add_relu)
            paddle.seed(0)
            model = build_model(name, num_classes=5, stem="cifar", width=8, **kw)
            model.eval()
            x = paddle.to_tensor(np.random.default_rng(1).standard_normal((4, 3, size, size)).astype("float32"))
            x.stop_gradient = False
            out = model(x)
            (out * paddle.to_tensor(np.arange(5, dtype="float32"))).sum().backward()
        return out.numpy(), x.grad.numpy(), {n: p.grad.numpy() for n, p in model.named_parameters()
                                             if not p.stop_gradient and p.grad is not None}

    out_a, gx_a, ga = run(True)
    out_b, gx_b, gb = run(False)
    np.testing.assert_allclose(out_b, out_a, rtol=1e-5, atol=1e-5)
    _close_to_scale(gx_b, gx_a)
    assert ga.keys() == gb.keys() and len(ga) > 0
    for key in ga:
        _close_to_scale(gb[key], ga[key], key)


def _close_to_scale(got, want, what=""):
    # Relative to the tensor's gradient scale: 1e-4 of the scale allows float32 rounding
    # through ~50 layers (the sums run in another order) and catches any wrong term
    # (which moves gradients by O(1)).
    scale = max(float(np.abs(want).max()), 1e-6)
    assert float(np.abs(got - want).max()) <= 1e-4 * scale, what


@pytest.mark.parametrize("name", ["orthonet50", "orthonet_mod_50", "orthonet18"])
def test_fused_blocks_in_training_mode_match_the_plain_blocks(name, monkeypatch):
    paddle.seed(0)
    model = build_model(name, 5, stem="cifar", width=8)
    model.train()
    rng = np.random.default_rng(3)
    for block in (model.layer1[0], model.layer2[1]):  # with and without downsample
        cin = block.conv1.weight.shape[1]
        side = 41 if block is model.layer1[0] else 19  # pooled to the 32/16-px filters
        xin = rng.standard_normal((4, cin, side, side)).astype("float32")
        res = []
        for plain in (True, False):
            with monkeypatch.context() as m:
                if plain:
                    m.setattr(resnet_mod, "attend_add_relu", _plain_attend_add_relu)
                x = paddle.to_tensor(xin)
                x.stop_gradient = False
                out = block(x)
                proj = paddle.to_tensor(np.random.default_rng(5).standard_normal(out.shape).astype("float32"))
                (out * proj).sum().backward()
            res.append((out.numpy(), x.grad.numpy(), block.att.fc1.weight.grad.numpy()))
            block.clear_gradients()
        np.testing.assert_allclose(res[1][0], res[0][0], rtol=1e-5, atol=1e-5)
        for got, want in zip(res[1][1:], res[0][1:]):
            _close_to_scale(got, want)


def test_training_takes_the_fused_path_unless_att_has_hooks(monkeypatch):
    fused_calls, hook_calls = [], []
    real = resnet_mod.attend_add_relu
    monkeypatch.setattr(resnet_mod, "attend_add_relu",
                        lambda *a: fused_calls.append(1) or real(*a))
    model = build_model("orthonet18", 5, stem="cifar", width=4)
    model.train()
    model(paddle.randn([1, 3, 16, 16]))
    assert len(fused_calls) == 8  # every block, with no option to set
    model.eval()
    with paddle.no_grad():
        model(paddle.randn([1, 3, 16, 16]))
    assert len(fused_calls) == 8  # no gradients recorded: the layer itself
    model.train()
    model.layer1[0].att.register_forward_post_hook(lambda *a: hook_calls.append(1))
    model(paddle.randn([1, 3, 16, 16]))
    assert hook_calls == [1] and len(fused_calls) == 15  # the hooked block runs the layer


@pytest.mark.parametrize("squeeze", sorted(FILTER_BANKS))
@pytest.mark.parametrize("shape", [(3, 32, 4, 4), (2, 5, 7, 3), (1, 7, 1, 1)])
def test_gemm_squeeze_equals_the_formula_values_and_gradients(squeeze, shape):
    b, c, h, w = shape
    bank = paddle.to_tensor(FILTER_BANKS[squeeze](c, h, w, 1).astype("float32"))
    grad = paddle.to_tensor(np.random.default_rng(2).standard_normal((b, c)).astype("float32"))
    xin = np.random.default_rng(1).standard_normal(shape).astype("float32")
    res = []
    for fn in (attention.squeeze_reference, attention.squeeze_gemm,
               lambda x, k: fused._Squeeze.apply(x, k)):
        x = paddle.to_tensor(xin)
        x.stop_gradient = False
        s = fn(x, bank)
        (s * grad).sum().backward()
        res.append((s.numpy(), x.grad.numpy()))
    oracle = (xin.astype(np.float64) * bank.numpy()).sum(axis=(2, 3))
    np.testing.assert_allclose(res[0][0], oracle, rtol=1e-5, atol=1e-5)
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
        s = attention.squeeze_gemm(x, bank, training)
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
    # Exported graphs keep squeeze and excitation at [b, c, 1, 1] (1x1 convs made from the
    # Linear weights); the gate and x * gate must be the formula's, biases included.
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
