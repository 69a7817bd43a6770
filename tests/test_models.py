"""Registered models: reference parameter counts, pretrained_cfg, stage features, the
attention position, each family's filter bank against its definition inside a built
model, and forward/backward/to_static/save-load for every model at small width."""
import inspect

import numpy as np
import paddle
import pytest

import orthonets_paddle
from orthonets_paddle import build_model, list_models, orthonet18, resnet18
from orthonets_paddle.models import build_model_from_config, get_pretrained_cfg
from orthonets_paddle.models import fcanet, orthonet, resnet, senet

SMALL = dict(width=8)  # same family, small enough for CPU tests


def _trainable(model):
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def _blocks(model):
    return [b for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for b in stage]


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


def test_seed_notebook_keyword_and_a_clear_error_for_positional_classes():
    assert orthonet18(n_classes=10, **SMALL).fc.weight.shape == [64, 10]
    assert orthonets_paddle.orthonet50(num_classes=7, **SMALL).fc.weight.shape == [256, 7]
    with pytest.raises(TypeError, match="num_classes=7"):
        orthonets_paddle.orthonet50(7)


def test_one_greppable_function_per_model_with_the_timm_signature():
    for module in (resnet, senet, fcanet, orthonet):
        source = inspect.getsource(module)
        assert "globals()" not in source
        assert source.startswith('"""') and "arXiv" in source.splitlines()[0] + source.splitlines()[1]
    for name in list_models():
        fn = getattr(orthonets_paddle, name)
        assert fn.__name__ == name
        assert list(inspect.signature(fn).parameters) == ["pretrained", "kwargs"]
        assert f"def {name}(pretrained=False, **kwargs)" in inspect.getsource(fn)


def test_pretrained_cfg():
    keys = {"input_size", "mean", "std", "num_classes", "classifier", "url", "sha256", "paper",
            "crop_pct", "interpolation", "first_conv", "pool_size"}
    for name in list_models():
        assert set(get_pretrained_cfg(name)) == keys
    assert build_model("orthonet50", **SMALL).pretrained_cfg["input_size"][-1] == 256
    assert build_model("orthonet_mod_101", **SMALL).pretrained_cfg["input_size"] == (3, 256, 256)
    assert build_model("fcanet50", **SMALL).pretrained_cfg["input_size"][-1] == 224
    assert build_model("se_resnet50", **SMALL).pretrained_cfg["input_size"][-1] == 224
    cifar = build_model("orthonet18", 10, stem="cifar", in_channels=1, **SMALL)
    assert cifar.pretrained_cfg["input_size"] == (1, 32, 32) and cifar.pretrained_cfg["num_classes"] == 10
    assert cifar.pretrained_cfg["mean"] == (0.5,)  # one per input channel
    m = build_model("orthonet18", **SMALL)
    assert m.pretrained_cfg["classifier"] == "fc" and hasattr(m, m.pretrained_cfg["classifier"])
    assert "2311.03071" in m.pretrained_cfg["paper"]
    assert "2012.11879" in get_pretrained_cfg("fcanet18")["paper"]
    assert "1709.01507" in get_pretrained_cfg("se_resnet18")["paper"]


def test_pretrained_weights_load_and_missing_url_is_explained(tmp_path):
    paddle.seed(3)
    src = build_model("orthonet18", 10, stem="cifar", **SMALL)
    path = str(tmp_path / "w.pdparams")
    paddle.save(src.state_dict(), path)
    loaded = build_model("orthonet18", 10, stem="cifar", pretrained=path, **SMALL)
    np.testing.assert_array_equal(loaded.fc.weight.numpy(), src.fc.weight.numpy())
    with pytest.raises(ValueError, match="no published Paddle weights.*convert_torch_weights"):
        build_model("orthonet18", pretrained=True, **SMALL)


def test_default_input_sizes_set_filter_sizes():
    def sizes(m):
        return [blk.att.size[0] for blk in (m.layer1[0], m.layer2[0], m.layer3[0], m.layer4[0])]
    assert sizes(build_model("orthonet50", **SMALL)) == [64, 32, 16, 8]
    assert sizes(build_model("orthonet_mod_50", **SMALL)) == [64, 32, 16, 8]
    assert sizes(build_model("fcanet50", **SMALL)) == [56, 28, 14, 7]
    assert sizes(build_model("orthonet18", stem="cifar", **SMALL)) == [32, 16, 8, 4]
    assert sizes(build_model("orthonet18", input_size=224, **SMALL)) == [56, 28, 14, 7]


@pytest.mark.slow
def test_orthonet50_features_only_at_224():
    model = build_model("orthonet50", features_only=True)
    model.eval()
    with paddle.no_grad():
        feats = model(paddle.randn([1, 3, 224, 224]))
    assert [f.shape for f in feats] == [[1, 256, 56, 56], [1, 512, 28, 28], [1, 1024, 14, 14],
                                        [1, 2048, 7, 7]]
    assert [i["num_chs"] for i in model.feature_info] == [256, 512, 1024, 2048]
    assert [i["reduction"] for i in model.feature_info] == [4, 8, 16, 32]
    assert model.fc is None and not any(k.startswith("fc.") for k in model.state_dict())


def test_features_only_out_indices_and_head():
    model = build_model_from_config({"name": "orthonet50", "class_num": 1000, "width": 8,
                                     "features_only": True, "out_indices": [1, 3], "norm": "frozen_bn"})
    model.eval()
    feats = model(paddle.randn([2, 3, 64, 64]))
    assert [f.shape for f in feats] == [[2, 64, 8, 8], [2, 256, 2, 2]]
    assert [(i["num_chs"], i["reduction"]) for i in model.feature_info] == [(64, 8), (256, 32)]
    full = build_model("orthonet18", 10, stem="cifar", **SMALL)
    full.eval()
    x = paddle.randn([2, 3, 32, 32])
    pooled = full.forward_head(full.forward_features(x), pre_logits=True)
    assert pooled.shape == [2, 64]
    np.testing.assert_allclose(full(x).numpy(), full.fc(pooled).numpy(), rtol=1e-6, atol=1e-6)
    full.reset_classifier(3)
    assert full(x).shape == [2, 3] and full.pretrained_cfg["classifier"] == "fc"


def test_mod_position_attends_planes_channels_after_bn2_before_relu():
    paddle.seed(0)
    m = build_model("orthonet_mod_50", **SMALL)
    m.eval()
    blk = m.layer1[1]
    assert blk.att.channels == 8 and m.layer4[0].att.channels == 64  # planes, not 4 * planes
    assert build_model("orthonet50", **SMALL).layer1[0].att.channels == 32
    seen = {}
    blk.bn2.register_forward_post_hook(lambda layer, inp, out: seen.update(bn2=out))
    blk.att.register_forward_post_hook(lambda layer, inp, out: seen.update(att_in=inp[0], att_out=out))
    blk.conv3.register_forward_pre_hook(lambda layer, inp: seen.update(conv3_in=inp[0]))
    with paddle.no_grad():
        m(paddle.randn([1, 3, 64, 64]))
    assert (seen["bn2"].numpy() < 0).any()  # before the ReLU
    np.testing.assert_array_equal(seen["att_in"].numpy(), seen["bn2"].numpy())
    np.testing.assert_allclose(seen["conv3_in"].numpy(), np.maximum(seen["att_out"].numpy(), 0),
                               rtol=1e-6, atol=1e-7)


def test_basic_block_models_have_no_mod_variant():
    assert "orthonet_mod_18" not in list_models() and "orthonet_mod_34" not in list_models()
    with pytest.raises(ValueError, match="BasicBlock has no mod position.*use 'orthonet18'"):
        build_model("orthonet_mod_18")


# ---- each family's filter bank, checked inside a built model, from its definition ----

# FcaNet's 16 "top" frequencies on the 7x7 grid (FcaNet's get_freq_indices('top16')).
_TOP16_X = [0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2]
_TOP16_Y = [0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2]


def _dct_ii(u, n):
    x = np.arange(n)
    return np.sqrt((1.0 if u == 0 else 2.0) / n) * np.cos(np.pi * (2 * x + 1) * u / (2 * n))


def test_fcanet_filters_are_the_dct_closed_form():
    m = build_model("fcanet50", **SMALL)
    for blk in (m.layer1[0], m.layer4[2]):
        c, (h, w) = blk.att.channels, blk.att.size
        bank = blk.att.filters.numpy()
        for k in range(c):
            i = k // (c // 16)
            expected = np.outer(_dct_ii(_TOP16_X[i] * (h // 7), h), _dct_ii(_TOP16_Y[i] * (w // 7), w))
            np.testing.assert_allclose(bank[k], expected, atol=1e-6)


def test_se_filters_are_constant_global_average():
    m = build_model("se_resnet50", **SMALL)
    for blk in (m.layer1[0], m.layer3[1]):
        h, w = blk.att.size
        np.testing.assert_allclose(blk.att.filters.numpy(), np.full((blk.att.channels, h, w), 1 / (h * w)),
                                   rtol=1e-7)
    assert not any(k.endswith("filters") for k in m.state_dict())  # as in SE checkpoints


@pytest.mark.parametrize("name", ["orthonet50", "orthonet_mod_50", "orthonet18"])
def test_ortho_filters_are_orthonormal_groups_distinct_per_block(name):
    m = build_model(name, **SMALL)
    blocks = _blocks(m)
    for blk in blocks:
        c, (h, w) = blk.att.channels, blk.att.size
        flat = blk.att.filters.numpy().reshape(c, -1).astype(np.float64)
        d = h * w
        for start in range(0, c, d):  # one group of c filters if d >= c, else groups of d
            g = flat[start:start + d]
            np.testing.assert_allclose(g @ g.T, np.eye(len(g)), atol=1e-5)
    a, b = blocks[0].att.filters.numpy(), blocks[1].att.filters.numpy()
    assert a.shape == b.shape and not np.allclose(a, b)


def test_random_filters_are_unit_norm_and_not_orthogonal():
    m = build_model("resnet50", squeeze="random", **SMALL)
    for blk in (m.layer1[0], m.layer2[0]):
        c = blk.att.channels
        flat = blk.att.filters.numpy().reshape(c, -1).astype(np.float64)
        assert (flat >= 0).all()
        np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1.0, atol=1e-6)
        assert np.abs(flat @ flat.T - np.eye(c)).max() > 0.3


def test_blocks_get_distinct_reproducible_banks():
    a = build_model("orthonet18", stem="cifar", **SMALL)
    b = build_model("orthonet18", stem="cifar", **SMALL)
    np.testing.assert_array_equal(a.layer1[0].att.filters.numpy(), b.layer1[0].att.filters.numpy())
    c = build_model("orthonet18", stem="cifar", seed=1, **SMALL)
    assert not np.allclose(a.layer1[0].att.filters.numpy(), c.layer1[0].att.filters.numpy())


def test_banks_built_in_parallel_equal_the_per_block_banks():
    from orthonets_paddle.layers import orthogonal
    m = build_model("orthonet50", input_size=224, seed=7, **SMALL)
    blocks = _blocks(m)
    for k in (0, 4, 9, len(blocks) - 1):
        att = blocks[k].att
        np.testing.assert_array_equal(att.filters.numpy(), orthogonal(att.channels, *att.size, seed=7 + k))


def test_dct_frequency_selection_reaches_the_banks():
    m = build_model("fcanet18", freq_sel="low4", **SMALL)
    bank = m.layer1[0].att.filters.numpy()  # 56x56, 8 channels, frequencies scaled by 8
    low4 = [(0, 0), (0, 1), (1, 0), (1, 1)]
    for k in range(8):
        u, v = low4[k // 2]
        np.testing.assert_allclose(bank[k], np.outer(_dct_ii(8 * u, 56), _dct_ii(8 * v, 56)), atol=1e-6)


def test_bad_names_and_options_are_clear_errors():
    with pytest.raises(ValueError, match="did you mean 'orthonet18'"):
        build_model("orthonet19")
    with pytest.raises(ValueError, match="valid: imagenet, cifar"):
        build_model("orthonet18", stem="tiny")
    with pytest.raises(ValueError, match="valid: post, mod"):
        build_model("orthonet50", position="pre")
    with pytest.raises(ValueError, match="ortho, dct, avg, random"):
        build_model("resnet18", squeeze="gram")
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        build_model("orthonet18", num_classes=-1)
    with pytest.raises(ValueError, match="valid: top1"):
        build_model("fcanet18", freq_sel="top3")


def test_squeeze_swaps_on_one_family():
    for squeeze in ("ortho", "dct", "avg", "random"):
        m = build_model("resnet18", stem="cifar", squeeze=squeeze, **SMALL)
        assert m.layer2[1].att.squeeze == squeeze


def _check_model(name, stem, sizes, tmp_path, static=True, **options):
    paddle.seed(0)
    model = build_model(name, num_classes=5, stem=stem, **SMALL, **options)
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
    clone = build_model(name, num_classes=5, stem=stem, seed=123, **SMALL, **options)  # other filters
    clone.set_state_dict(paddle.load(path))
    clone.eval()
    xe = paddle.randn([2, 3, sizes[0], sizes[0]])
    with paddle.no_grad():
        ref = model(xe).numpy()
        np.testing.assert_array_equal(clone(xe).numpy(), ref)
    if static:  # against the dygraph output: to_static converts ``model`` itself
        traced = paddle.jit.to_static(model, full_graph=True)
        with paddle.no_grad():
            np.testing.assert_allclose(traced(xe).numpy(), ref, rtol=1e-4, atol=1e-5)
    for s in sizes[1:]:
        assert model(paddle.randn([1, 3, s, s])).shape == [1, 5]


_DEEP = [n for n in list_models() if n.endswith(("101", "152"))]
# Tracing is per layer and every deep model repeats the 50-layer models' blocks, so one
# trace per block kind at full depth is enough: the paper's largest post and MOD models.
_DEEP_TRACED = ["orthonet152", "orthonet_mod_101"]


@pytest.mark.parametrize("name", list_models())
def test_every_model_imagenet_stem_at_64_and_96(name, tmp_path):
    # 64 px puts 16/8/4/2 maps on filters made for 224 or 256 (the pooling fold), 96 px too.
    # Tracing 101/152 takes 20-40 s (per layer, not per pixel): their to_static is in the
    # slow test below; their blocks are the ones traced here for 18/34/50.
    _check_model(name, "imagenet", [64, 96], tmp_path, static=name not in _DEEP)


@pytest.mark.slow
@pytest.mark.parametrize("name", _DEEP_TRACED)
def test_deep_models_to_static(name, tmp_path):
    _check_model(name, "imagenet", [64], tmp_path)


@pytest.mark.parametrize("name", list_models("18") + ["orthonet50", "orthonet_mod_50", "fcanet50"])
def test_cifar_stem(name, tmp_path):
    _check_model(name, "cifar", [32], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["orthonet_mod_50", "fcanet50"])
def test_full_width_at_224_to_static(name):
    # The published resolutions: OrthoNet-MOD's 256-px filters enlarged from 224 maps.
    paddle.seed(0)
    model = build_model(name, 1000)
    model.eval()
    x = paddle.randn([1, 3, 224, 224])
    with paddle.no_grad():
        ref = model(x).numpy()
        got = paddle.jit.to_static(model, full_graph=True)(x).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))


def test_mod_position_on_basic_blocks_is_an_error_not_silently_post():
    with pytest.raises(ValueError, match="position 'mod' needs Bottleneck blocks"):
        build_model("orthonet18", 10, stem="cifar", width=4, position="mod")


# ----------------------------------------------------------------------------- timm conventions
from orthonets_paddle import create_model  # noqa: E402
from orthonets_paddle.models.resnet import DropPath  # noqa: E402

TINY = dict(width=4, stem="cifar")
SAMPLE = ["resnet18", "se_resnet34", "fcanet50", "orthonet18", "orthonet_mod_50"]


def test_list_models_wildcards_as_timm():
    ortho = ["orthonet18", "orthonet34", "orthonet50", "orthonet101", "orthonet152",
             "orthonet_mod_50", "orthonet_mod_101", "orthonet_mod_152"]
    assert list_models("orthonet*") == ortho
    assert list_models("orthonet_mod_*") == ortho[5:]
    assert list_models("*50", exclude_filters=["orthonet_mod*", "se_*"]) == [
        "resnet50", "fcanet50", "orthonet50"]
    assert list_models(["resnet1?", "fcanet18"]) == ["resnet18", "fcanet18"]
    assert list_models("18") == ["resnet18", "se_resnet18", "fcanet18", "orthonet18"]  # substring
    assert list_models("nothing*") == []


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_the_timm_attributes(name):
    m = create_model(name, num_classes=0, in_chans=1, **TINY)
    assert m.arch == name and m.fc is None and isinstance(m.get_classifier(), paddle.nn.Identity)
    assert not any(k.startswith("fc.") for k in m.state_dict())
    assert m.feature_info.channels()[-1] == m.num_features
    assert m.feature_info.reduction() == [1, 2, 4, 8]
    cfg = m.pretrained_cfg
    assert cfg["num_classes"] == 0 and cfg["input_size"] == (1, 32, 32) and cfg["crop_pct"] == 1.0
    assert m.state_dict()[cfg["first_conv"] + ".weight"].shape[1] == 1  # the in_chans conv
    assert cfg["pool_size"] == (4, 4) and cfg["interpolation"] == "bilinear"
    imagenet = get_pretrained_cfg(name)
    side = imagenet["input_size"][-1]
    assert imagenet["pool_size"] == (-(-side // 32),) * 2 and imagenet["crop_pct"] == 0.875


@pytest.mark.parametrize("name", SAMPLE)
def test_create_model_is_build_model(name):
    paddle.seed(5)
    a = create_model(name, num_classes=7, in_chans=2, **TINY)
    paddle.seed(5)
    b = build_model(name, num_classes=7, in_channels=2, **TINY)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k].numpy(), sb[k].numpy())
    with pytest.raises(ValueError, match="in_chans=1 and in_channels=3 disagree"):
        create_model(name, in_chans=1, in_channels=3, **TINY)


def _pool_oracle(fmap, pool):
    avg, mx = fmap.mean(axis=(2, 3)), fmap.max(axis=(2, 3))
    return {"avg": avg, "max": mx, "avgmax": 0.5 * (avg + mx),
            "catavgmax": np.concatenate([avg, mx], 1)}[pool]


@pytest.mark.parametrize("name", SAMPLE)
@pytest.mark.parametrize("pool", ["avg", "max", "avgmax", "catavgmax"])
def test_num_classes_0_and_global_pool_against_numpy(name, pool):
    paddle.seed(6)
    m = create_model(name, num_classes=0, global_pool=pool, **TINY)
    m.eval()
    x = paddle.randn([2, 3, 16, 16])
    with paddle.no_grad():
        fmap = m.forward_features(x).numpy()
        got = m(x).numpy()
    assert got.shape == (2, m.num_features)
    np.testing.assert_allclose(got, _pool_oracle(fmap, pool), rtol=1e-5, atol=1e-6)
    m.reset_classifier(3)  # the classifier takes num_features (twice the channels for cat)
    assert m(x).shape == [2, 3] and m.get_classifier() is m.fc


def test_unpooled_features_and_pool_errors():
    m = create_model("orthonet18", num_classes=0, global_pool="", **TINY)
    assert m(paddle.randn([1, 3, 16, 16])).shape == [1, 32, 2, 2]
    with pytest.raises(ValueError, match="global_pool='' .*num_classes=0"):
        create_model("orthonet18", num_classes=10, global_pool="", **TINY)
    with pytest.raises(ValueError, match="unknown global_pool 'mean'; valid: avg, max"):
        create_model("orthonet18", global_pool="mean", **TINY)
    with pytest.raises(ValueError, match="drop_path_rate must be a probability"):
        create_model("orthonet18", drop_path_rate=1.5, **TINY)
    # reset_classifier keeps the pooling: a classifier on the unpooled map would never run
    with pytest.raises(ValueError, match="global_pool='' .*num_classes=0"):
        create_model("orthonet18", num_classes=0, global_pool="", **TINY).reset_classifier(10)


def test_drop_rate_is_dropout_before_the_classifier():
    paddle.seed(7)
    m = create_model("orthonet18", num_classes=0, drop_rate=0.5, **TINY)
    feats = paddle.ones([400, m.num_features, 2, 2])
    m.train()
    out = m.forward_head(feats).numpy()
    assert set(np.unique(out)) <= {0.0, 2.0}  # inverted dropout: kept values scaled by 1/(1-p)
    assert 0.4 < (out == 0).mean() < 0.6
    m.eval()
    np.testing.assert_array_equal(m.forward_head(feats).numpy(), np.ones_like(out))


def test_drop_path_rates_increase_linearly_per_block():
    m = create_model("orthonet_mod_50", drop_path_rate=0.2, **TINY)
    rates = [b.drop_path.p if b.drop_path is not None else 0.0 for b in _blocks(m)]
    np.testing.assert_allclose(rates, np.linspace(0, 0.2, 16), rtol=1e-12)  # timm's rule
    assert create_model("orthonet18", **TINY).layer4[1].drop_path is None  # off by default


def test_drop_path_drops_whole_samples_of_the_branch():
    paddle.seed(8)
    dp = DropPath(0.3)
    x = paddle.ones([2000, 3, 2, 2])
    dp.train()
    y = dp(x).numpy()
    per_sample = y.reshape(2000, -1)
    assert (per_sample == per_sample[:, :1]).all()  # all or nothing per sample
    assert set(np.unique(y)) <= {0.0, 1 / 0.7} or np.allclose(np.unique(y), [0, 1 / 0.7])
    assert 0.25 < (per_sample[:, 0] == 0).mean() < 0.35
    dp.eval()
    np.testing.assert_array_equal(dp(x).numpy(), x.numpy())


@pytest.mark.parametrize("name", ["orthonet18", "orthonet_mod_50", "resnet18"])
def test_drop_path_in_a_block_against_its_definition(name):
    """With frozen BN, block(x) in training is relu(identity) for a dropped sample and
    relu(identity + branch / keep) for a kept one (branch: the block's residual branch)."""
    paddle.seed(9)
    m = create_model(name, drop_path_rate=0.9, norm="frozen_bn", **TINY)
    blk = m.layer4[-1]  # the last block (rate 0.9); stride 1, no downsample: identity is x
    keep = 1 - blk.drop_path.p
    x = paddle.randn([64, blk.conv1.weight.shape[1], 2, 2])
    m.eval()
    with paddle.no_grad():
        blk.drop_path.p, saved = 0.0, blk.drop_path.p
        ref_full = blk(x).numpy()
        blk.drop_path.p = saved
        # branch + identity through relu at p=0 gives ref_full; recover the branch from a
        # copy of the block's forward without the final relu/add.
        def branch(z):
            if isinstance(blk, resnet.Bottleneck):
                out = blk.relu(blk.bn1(blk.conv1(z)))
                out = blk.bn2(blk.conv2(out))
                out = blk.att(out) if blk.att is not None and blk.position == "mod" else out
                out = blk.bn3(blk.conv3(blk.relu(out)))
                return out if blk.att is None or blk.position == "mod" else blk.att(out)
            out = blk.bn2(blk.conv2(blk.relu(blk.bn1(blk.conv1(z)))))
            return out if blk.att is None else blk.att(out)
        b = branch(x).numpy()
    np.testing.assert_allclose(np.maximum(b + x.numpy(), 0), ref_full, rtol=1e-5, atol=1e-5)
    m.train()
    got = blk(x).numpy()
    dropped = np.maximum(x.numpy(), 0)
    kept = np.maximum(x.numpy() + b / keep, 0)
    is_dropped = np.array([np.allclose(g, d, atol=1e-5) for g, d in zip(got, dropped)])
    np.testing.assert_allclose(got[~is_dropped], kept[~is_dropped], rtol=1e-4, atol=1e-4)
    assert keep == pytest.approx(0.1) and 0.7 * 64 < is_dropped.sum() < 64


def test_feature_info_matches_the_feature_maps():
    m = create_model("orthonet50", features_only=True, width=4)
    feats = m(paddle.randn([1, 3, 64, 64]))
    assert m.feature_info.channels() == [f.shape[1] for f in feats]
    assert m.feature_info.reduction() == [64 // f.shape[2] for f in feats]
    assert m.feature_info.channels(-1) == 128 and m.feature_info.module_name(0) == "layer1"
    full = create_model("orthonet50", width=4)
    assert full.pretrained_cfg["pool_size"] == tuple(full.forward_features(
        paddle.randn([1, 3, 256, 256])).shape[2:])
    assert full.feature_info[0]["num_chs"] == 16  # still the list of dicts det/backbone reads


def test_no_classifier_model_loads_a_full_checkpoint(tmp_path):
    paddle.seed(10)
    src = create_model("orthonet18", num_classes=10, **TINY)
    path = str(tmp_path / "w.pdparams")
    paddle.save(src.state_dict(), path)
    feats = create_model("orthonet18", num_classes=0, pretrained=path, **TINY)
    x = paddle.randn([2, 3, 16, 16])
    src.eval(), feats.eval()
    np.testing.assert_allclose(feats(x).numpy(), src.forward_head(src.forward_features(x), True).numpy(),
                               rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- paddle.hub
def _clean_copy(dst):
    """The repository's files (tracked and new, not ignored) copied to ``dst``: a clean
    clone of the working tree, without outputs, caches or an install."""
    import os
    import shutil
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = subprocess.run(["git", "-C", root, "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        if os.path.isfile(os.path.join(root, rel)):
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            shutil.copy2(os.path.join(root, rel), os.path.join(dst, rel))
    return dst


def test_paddle_hub_load_and_list_from_a_clean_clone(tmp_path):
    import subprocess
    import sys
    clone = _clean_copy(str(tmp_path / "repo"))
    code = (
        "import json, sys, paddle\n"
        "names = paddle.hub.list(sys.argv[1], source='local')\n"
        "m = paddle.hub.load(sys.argv[1], 'orthonet50', source='local', num_classes=0, width=4)\n"
        "c = paddle.hub.load(sys.argv[1], 'resnet18', source='local', num_classes=3, stem='cifar',"
        " width=4, in_chans=1)\n"
        "out = c(paddle.randn([2, 1, 16, 16]))\n"
        "print(json.dumps({'names': names, 'arch': m.arch, 'feat': m.num_features,"
        " 'fc': m.fc is None, 'out': out.shape, 'file': sys.modules['orthonets_paddle'].__file__,"
        " 'doc': paddle.hub.help(sys.argv[1], 'orthonet18', source='local')}))\n")
    proc = subprocess.run([sys.executable, "-c", code, clone], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=300,
                          env={k: v for k, v in __import__("os").environ.items()
                               if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(got["names"]) == sorted(list_models())  # only the models are public
    assert got["arch"] == "orthonet50" and got["feat"] == 128 and got["fc"]
    assert got["out"] == [2, 3] and got["file"].startswith(clone)  # the clone's package
    assert "OrthoNet-18" in got["doc"]


# ----------------------------------------------------------------------------- docs/MODELS.md
_MODELS_MD = __import__("os").path.join(__import__("os").path.dirname(
    __import__("os").path.dirname(__import__("os").path.abspath(__file__))), "docs", "MODELS.md")


def _table_params():
    from orthonets_paddle.deploy.model_table import read_params_column
    with open(_MODELS_MD, encoding="utf-8") as f:
        return read_params_column(f.read())


def test_models_md_lists_every_registered_model():
    assert set(_table_params()) == set(list_models())


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n.endswith(("101", "152"))
                                  else n for n in list_models()])
def test_models_md_params_equal_build_model(name):
    assert _table_params()[name] == _trainable(build_model(name, num_classes=1000))


def test_model_flops_counts_conv_and_linear_macs():
    from orthonets_paddle.deploy.model_table import model_flops
    net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3, padding=1), paddle.nn.ReLU(),
                               paddle.nn.Conv2D(4, 6, 1, stride=2, groups=2),
                               paddle.nn.Flatten(), paddle.nn.Linear(6 * 4 * 4, 5))
    # 8x8x4 outputs x 27 MACs; 4x4x6 outputs x (4/2 input channels); 96 x 5.
    assert model_flops(net, [3, 8, 8]) == 8 * 8 * 4 * 27 + 4 * 4 * 6 * 2 + 96 * 5
    assert round(model_flops(build_model("resnet50"), [3, 224, 224]) / 1e9, 1) == 4.1  # timm: 4.1


def test_squeeze_none_and_config_errors_name_the_dotted_key():
    plain = build_model_from_config({"name": "orthonet18", "class_num": 3, "squeeze": "none", **TINY})
    ref = build_model("resnet18", 3, **TINY)
    assert all(b.att is None for b in _blocks(plain))
    assert [(k, v.shape) for k, v in plain.state_dict().items()] == [
        (k, v.shape) for k, v in ref.state_dict().items()]
    with pytest.raises(ValueError, match=r"^Arch\.squeeze: unknown squeeze 'gram'.*valid: none "):
        build_model_from_config({"name": "resnet18", "class_num": 3, "squeeze": "gram"})
    with pytest.raises(ValueError, match=r"^Arch\.class_num: num_classes must be"):
        build_model_from_config({"name": "resnet18", "class_num": -2})
    with pytest.raises(ValueError, match=r"^Arch\.global_pool: unknown global_pool"):
        build_model_from_config({"name": "resnet18", "class_num": 3, "global_pool": "mean"})
    with pytest.raises(ValueError, match=r"^Arch\.name: unknown model 'orthonet19'"):
        build_model_from_config({"name": "orthonet19", "class_num": 3})


def test_model_table_tool_writes_params_and_flops(tmp_path):
    """tools/model_table.py --no-latency: each model and its depth's ResNet, the params column
    as build_model counts them, FLOPs as model_flops counts them, no latency cells."""
    import subprocess
    import sys
    from orthonets_paddle.deploy.model_table import model_flops, read_params_column
    root = _MODELS_MD.rsplit("docs", 1)[0]
    out = tmp_path / "MODELS.md"
    proc = subprocess.run([sys.executable, root + "tools/model_table.py", "--models", "orthonet18",
                           "--no-latency", "--output", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("# Models:") and "python tools/model_table.py --models orthonet18" in text
    params = read_params_column(text)
    assert list(params) == ["orthonet18", "resnet18"]
    for name in params:
        net = build_model(name, num_classes=1000)
        assert params[name] == _trainable(net)
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))
        size = net.pretrained_cfg["input_size"]
        assert row.split("|")[2:5] == [f" {size[1]}x{size[2]} ", f" {params[name]:,} ",
                                       f" {model_flops(net, size) / 1e9:.2f} "]
        assert row.rstrip().endswith("| - | - | - | - | - |")
