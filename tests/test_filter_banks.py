import numpy as np
import paddle
import pytest

from orthonets_paddle.layers import (ChannelAttention, average, dct, dct_frequencies,
                                     get_filter_bank, orthogonal, orthogonal_groups, random)


@pytest.mark.parametrize("c,h,w", [(64, 8, 8), (64, 32, 32), (256, 64, 64), (64, 7, 7),
                                   (2048, 8, 8), (100, 3, 3), (512, 4, 4), (5, 1, 1)])
def test_orthogonal_groups_are_orthonormal(c, h, w):
    bank = orthogonal(c, h, w, seed=3)
    assert bank.shape == (c, h, w) and bank.dtype == np.float32
    flat = bank.reshape(c, -1).astype(np.float64)
    groups = orthogonal_groups(c, h, w)
    assert sum(b - a for a, b in groups) == c  # every channel has a filter, last group completed
    for a, b in groups:
        gram = flat[a:b] @ flat[a:b].T
        np.testing.assert_allclose(gram, np.eye(b - a), atol=1e-5)


def test_orthogonal_matches_gram_schmidt_in_order():
    # Classical Gram-Schmidt on the same uniform draws, in order, gives the same filters.
    bank = orthogonal(6, 3, 3, seed=11).reshape(6, 9).astype(np.float64)
    vecs = np.random.default_rng(11).random((9, 6)).T
    out = []
    for v in vecs:
        for u in out:
            v = v - (v @ u) * u
        out.append(v / np.linalg.norm(v))
    np.testing.assert_allclose(bank, np.stack(out), atol=1e-6)


def test_same_seed_same_bank_other_seed_other_bank():
    for fn in (orthogonal, random):
        np.testing.assert_array_equal(fn(32, 4, 4, seed=1), fn(32, 4, 4, seed=1))
        assert not np.allclose(fn(32, 4, 4, seed=1), fn(32, 4, 4, seed=2))


def _dct_ii(u, n):
    x = np.arange(n)
    scale = np.sqrt(1.0 / n) if u == 0 else np.sqrt(2.0 / n)
    return scale * np.cos(np.pi * (2 * x + 1) * u / (2 * n))


@pytest.mark.parametrize("size", [7, 14, 28, 56])
def test_dct_matches_closed_form_dct_ii(size):
    c = 64
    bank = dct(c, size, size)
    xs, ys = dct_frequencies("top16")
    step = size // 7
    for k in range(c):
        i = k // (c // 16)
        expected = np.outer(_dct_ii(xs[i] * step, size), _dct_ii(ys[i] * step, size))
        np.testing.assert_allclose(bank[k], expected, atol=1e-6)
    # The DCT-II basis is orthonormal: distinct frequencies are orthogonal.
    flat = bank[:: c // 16].reshape(16, -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(16), atol=1e-5)


@pytest.mark.parametrize("method", ["top1", "low8", "bot32", "top16"])
def test_dct_frequency_selections(method):
    xs, ys = dct_frequencies(method)
    assert len(xs) == len(ys) == int(method[3:])
    assert dct(64, 7, 7, freq_sel=method).shape == (64, 7, 7)


def test_dct_unknown_selection_lists_valid():
    with pytest.raises(ValueError, match="top16"):
        dct_frequencies("top3")


def test_average_and_random():
    np.testing.assert_allclose(average(4, 2, 2), np.full((4, 2, 2), 0.25))
    r = random(16, 4, 4, seed=0).reshape(16, -1)
    assert (r >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, atol=1e-6)
    gram = r @ r.T
    assert np.abs(gram - np.eye(16)).max() > 0.3  # clearly not orthogonal


def test_unknown_squeeze_lists_valid_names():
    with pytest.raises(ValueError, match="ortho, dct, avg, random"):
        get_filter_bank("orthogonal")
    with pytest.raises(ValueError, match="positive"):
        orthogonal(0, 4, 4)


def test_orthogonal_bank_is_fast_for_orthonet152_sizes():
    # Correctness guard for the vectorised path used at the largest sizes.
    bank = orthogonal(2048, 8, 8, seed=0).reshape(2048, 64).astype(np.float64)
    g = bank[64:128] @ bank[64:128].T
    np.testing.assert_allclose(g, np.eye(64), atol=1e-5)


class TestChannelAttention:
    def test_buffer_is_persistable_not_a_parameter(self):
        att = ChannelAttention(32, 4, squeeze="ortho", seed=5)
        state = att.state_dict()
        assert "filters" in state
        np.testing.assert_array_equal(state["filters"].numpy(), orthogonal(32, 4, 4, seed=5))
        names = [n for n, _ in att.named_parameters()]
        assert sorted(names) == ["fc1.weight", "fc2.weight"]
        assert att.fc1.weight.shape == [32, 2]  # round(32/16) hidden, no bias
        assert att.fc1.bias is None and att.fc2.bias is None

    def test_forward_is_squeeze_excite_rescale(self):
        paddle.seed(0)
        att = ChannelAttention(16, 4, squeeze="ortho")
        x = paddle.randn([2, 16, 4, 4])
        k = att.filters.numpy()
        s = (x.numpy() * k).sum(axis=(2, 3))
        h = np.maximum(s @ att.fc1.weight.numpy(), 0)
        e = 1 / (1 + np.exp(-(h @ att.fc2.weight.numpy())))
        np.testing.assert_allclose(att(x).numpy(), x.numpy() * e[:, :, None, None], rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize("size,shape", [(4, (8, 8)), (64, (56, 56)), (7, (10, 13)), (8, (5, 9))])
    def test_other_feature_size_is_pooled_first(self, size, shape):
        # Shrinking, enlarging (the authors' 256-px models at 224) and uneven bins.
        att = ChannelAttention(16, size, squeeze="ortho")
        x = paddle.randn([2, 16, *shape])
        pooled = paddle.nn.functional.adaptive_avg_pool2d(x, size)
        np.testing.assert_allclose(att.squeeze_features(x).numpy(),
                                   att.squeeze_features(pooled).numpy(), rtol=1e-4, atol=1e-5)

    def test_avg_is_global_average_pooling(self):
        att = ChannelAttention(16, 4, squeeze="avg")
        assert att.filters is None and "filters" not in att.state_dict()
        x = paddle.randn([2, 16, 5, 5])
        np.testing.assert_allclose(att.squeeze_features(x).numpy(), x.numpy().mean(axis=(2, 3)),
                                   rtol=1e-5, atol=1e-6)

    def test_hidden_width_is_rounded(self):
        assert ChannelAttention(24, 2).fc1.weight.shape == [24, 2]  # round(1.5) = 2
        assert ChannelAttention(8, 2).fc1.weight.shape == [8, 1]    # round(0.5) = 0 -> at least 1
