"""Every registered model: shape, gradients, to_static, exact save/load; reference counts."""
import numpy as np
import paddle
import pytest

import orthonets_paddle
from orthonets_paddle import build_model, list_models, orthonet18, resnet18

SMALL = dict(width=8)  # same family, small enough for CPU tests


def _trainable(model):
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def test_summary_counts_match_the_seed_notebook():
    for fn, total, trainable in ((orthonet18, 11_270_602, 11_261_002),
                                 (resnet18, 11_183_562, 11_173_962)):
        info = paddle.summary(fn(num_classes=10, stem="cifar"), (1, 3, 32, 32))
        assert int(info["total_params"]) == total
        assert int(info["trainable_params"]) == trainable


@pytest.mark.parametrize("name,count", [
    ("orthonet18", 11_776_552), ("orthonet34", 21_954_856), ("orthonet50", 28_071_976),
    ("orthonet101", 49_292_328), ("orthonet152", 66_770_984),
    ("orthonet_mod_50", 25_714_216), ("orthonet_mod_101", 44_845_608)])
def test_trainable_counts_match_the_authors_models(name, count):
    assert _trainable(build_model(name, num_classes=1000)) == count


def test_resnet18_cifar_is_paddle_vision_resnet18_with_3x3_stem():
    ref = paddle.vision.models.resnet18(num_classes=10)
    ref.conv1 = paddle.nn.Conv2D(3, 64, 3, stride=1, padding=1, bias_attr=False)
    ref.maxpool = paddle.nn.Identity()
    ours = resnet18(num_classes=10, stem="cifar")
    ref_state, our_state = ref.state_dict(), ours.state_dict()
    assert list(ref_state) == list(our_state)
    assert all(ref_state[k].shape == our_state[k].shape for k in ref_state)
    ours.set_state_dict(ref_state)
    ref.eval(), ours.eval()
    x = paddle.randn([2, 3, 32, 32])
    np.testing.assert_allclose(ours(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-5)


def test_seed_notebook_call_and_positional_classes():
    assert orthonet18(n_classes=10).fc.weight.shape == [512, 10]
    assert orthonets_paddle.orthonet50(7).fc.weight.shape == [2048, 7]


def test_default_input_sizes_set_filter_sizes():
    def sizes(m):
        return [blk.att.size[0] for blk in (m.layer1[0], m.layer2[0], m.layer3[0], m.layer4[0])]
    assert sizes(build_model("orthonet50", **SMALL)) == [64, 32, 16, 8]
    assert sizes(build_model("orthonet_mod_50", **SMALL)) == [64, 32, 16, 8]
    assert sizes(build_model("fcanet50", **SMALL)) == [56, 28, 14, 7]
    assert sizes(build_model("orthonet18", stem="cifar", **SMALL)) == [32, 16, 8, 4]
    assert sizes(build_model("orthonet18", input_size=224, **SMALL)) == [56, 28, 14, 7]


def test_mod_position_attends_planes_channels_before_expansion():
    m = build_model("orthonet_mod_50", **SMALL)
    blk = m.layer1[0]
    assert blk.att.channels == 8 and m.layer4[0].att.channels == 64
    assert build_model("orthonet50", **SMALL).layer1[0].att.channels == 32
    # BasicBlock has no mod position: orthonet_mod_18 attends after the second BN.
    assert build_model("orthonet_mod_18", **SMALL).layer1[0].att.channels == 8


def test_blocks_get_distinct_reproducible_banks():
    a = build_model("orthonet18", stem="cifar", **SMALL)
    b = build_model("orthonet18", stem="cifar", **SMALL)
    np.testing.assert_array_equal(a.layer1[0].att.filters.numpy(), b.layer1[0].att.filters.numpy())
    assert not np.allclose(a.layer1[0].att.filters.numpy(), a.layer1[1].att.filters.numpy())
    c = build_model("orthonet18", stem="cifar", seed=1, **SMALL)
    assert not np.allclose(a.layer1[0].att.filters.numpy(), c.layer1[0].att.filters.numpy())


def test_bad_names_and_options_are_clear_errors():
    with pytest.raises(ValueError, match="Did you mean orthonet18"):
        build_model("orthonet19")
    with pytest.raises(ValueError, match="valid: imagenet, cifar"):
        build_model("orthonet18", stem="tiny")
    with pytest.raises(ValueError, match="valid: post, mod"):
        build_model("orthonet50", position="pre")
    with pytest.raises(ValueError, match="ortho, dct, avg, random"):
        build_model("resnet18", squeeze="gram")
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        build_model("orthonet18", num_classes=0)


def test_squeeze_swaps_on_one_family():
    for squeeze in ("ortho", "dct", "avg", "random"):
        m = build_model("resnet18", stem="cifar", squeeze=squeeze, **SMALL)
        assert m.layer2[1].att.squeeze == squeeze


def _check_model(name, stem, sizes, tmp_path):
    paddle.seed(0)
    model = build_model(name, num_classes=5, stem=stem, **SMALL)
    model.train()
    x = paddle.randn([2, 3, sizes[0], sizes[0]])
    out = model(x)
    assert out.shape == [2, 5]
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if not p.stop_gradient and p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"

    model.eval()
    path = str(tmp_path / "m.pdparams")
    paddle.save(model.state_dict(), path)
    clone = build_model(name, num_classes=5, stem=stem, seed=123, **SMALL)  # other filters
    clone.set_state_dict(paddle.load(path))
    clone.eval()
    xe = paddle.randn([2, 3, sizes[0], sizes[0]])
    with paddle.no_grad():
        np.testing.assert_array_equal(clone(xe).numpy(), model(xe).numpy())
    static = paddle.jit.to_static(model, full_graph=True)
    with paddle.no_grad():
        np.testing.assert_allclose(static(xe).numpy(), model(xe).numpy(), rtol=1e-4, atol=1e-5)
    for s in sizes[1:]:
        assert model(paddle.randn([1, 3, s, s])).shape == [1, 5]


@pytest.mark.parametrize("name", list_models())
def test_every_model_imagenet_stem_224_and_256(name, tmp_path):
    _check_model(name, "imagenet", [224, 256], tmp_path)


@pytest.mark.parametrize("name", list_models("18") + ["orthonet50", "orthonet_mod_50", "fcanet50"])
def test_cifar_stem(name, tmp_path):
    _check_model(name, "cifar", [32], tmp_path)


def test_banks_built_in_parallel_equal_the_per_block_banks():
    from orthonets_paddle.layers import orthogonal
    m = build_model("orthonet50", input_size=224, seed=7, **SMALL)
    blocks = [b for stage in (m.layer1, m.layer2, m.layer3, m.layer4) for b in stage]
    for k in (0, 4, 9, len(blocks) - 1):
        att = blocks[k].att
        np.testing.assert_array_equal(att.filters.numpy(), orthogonal(att.channels, *att.size, seed=7 + k))


@pytest.mark.parametrize("name,size", [("orthonet18", 32), ("orthonet_mod_50", 32),
                                       ("orthonet50", 40), ("se_resnet18", 32), ("fcanet18", 24)])
def test_lean_backward_gives_the_plain_gradients(name, size, monkeypatch):
    # The memory-lean training path (layers/fused.py) must not change any gradient.
    import orthonets_paddle.layers.attention as attention

    def grads(lean):
        monkeypatch.setattr(attention.ChannelAttention, "_lean",
                            (lambda self, x: not x.stop_gradient) if lean else (lambda self, x: False))
        paddle.seed(0)
        model = build_model(name, num_classes=5, stem="cifar", **SMALL)
        model.train()
        x = paddle.to_tensor(np.random.default_rng(1).standard_normal((4, 3, size, size)).astype("float32"))
        x.stop_gradient = False
        out = model(x)
        (out * paddle.to_tensor(np.arange(5, dtype="float32"))).sum().backward()
        return out.numpy(), x.grad.numpy(), {n: p.grad.numpy() for n, p in model.named_parameters()
                                             if not p.stop_gradient}

    out_a, gx_a, ga = grads(False)
    out_b, gx_b, gb = grads(True)
    np.testing.assert_allclose(out_b, out_a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx_b, gx_a, rtol=1e-3, atol=1e-5)
    assert ga.keys() == gb.keys()
    for key in ga:
        scale = max(float(np.abs(ga[key]).max()), 1e-6)
        assert float(np.abs(gb[key] - ga[key]).max()) <= 1e-3 * scale + 1e-6, key
