"""Filter banks against their definitions: Gram-Schmidt, the DCT-II closed form, 1/hw,
unit-norm uniform draws; one signature ``bank(c, h, w, seed) -> float32 [c, h, w]``."""
import inspect

import numpy as np
import pytest

from orthonets_paddle.layers import (FILTER_BANKS, average, dct, dct_bank, dct_frequencies,
                                     get_filter_bank, orthogonal, orthogonal_groups, random)
from orthonets_paddle.layers import filter_banks


@pytest.mark.parametrize("name", sorted(FILTER_BANKS))
def test_every_bank_has_the_one_signature(name):
    fn = FILTER_BANKS[name]
    assert list(inspect.signature(fn).parameters) == ["c", "h", "w", "seed"]
    bank = fn(6, 3, 5, 2)
    assert bank.shape == (6, 3, 5) and bank.dtype == np.float32


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
    fn = dct_bank(method)
    assert list(inspect.signature(fn).parameters) == ["c", "h", "w", "seed"]
    bank = fn(64, 14, 14, 0)
    n = len(xs)
    for k in (0, 63):  # channel k uses frequency k * n // c, scaled by 14 // 7 = 2
        i = k * n // 64
        expected = np.outer(_dct_ii(2 * xs[i], 14), _dct_ii(2 * ys[i], 14))
        np.testing.assert_allclose(bank[k], expected, atol=1e-6)
    assert get_filter_bank("dct", method)(64, 14, 14, 0).tobytes() == bank.tobytes()


def test_dct_unknown_selection_lists_valid():
    with pytest.raises(ValueError, match="top16"):
        dct_frequencies("top3")
    with pytest.raises(ValueError, match="low4"):
        get_filter_bank("dct", "mid4")


def test_average_and_random():
    np.testing.assert_allclose(average(4, 2, 2), np.full((4, 2, 2), 0.25))
    r = random(16, 4, 4, seed=0).reshape(16, -1)
    assert (r >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, atol=1e-6)
    gram = r @ r.T
    assert np.abs(gram - np.eye(16)).max() > 0.3  # clearly not orthogonal


def test_unknown_squeeze_lists_valid_names():
    with pytest.raises(ValueError, match="did you mean 'ortho'.*valid: ortho, dct, avg, random"):
        get_filter_bank("orthogonal")
    with pytest.raises(ValueError, match="positive"):
        orthogonal(0, 4, 4)


def _gram_schmidt64(vecs):
    """Oracle: modified Gram-Schmidt, twice (re-orthogonalised), float64, rows in order."""
    out = []
    for v in vecs.astype(np.float64):
        for _ in range(2):
            for u in out:
                v = v - (v @ u) * u
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


def test_large_bank_is_float64_gram_schmidt_before_the_cast():
    # 256 x 64x64: 4096 x 256 entries, formerly Paddle's float32 QR (1.4e-6 off).
    c, h, w = 256, 64, 64
    vecs = np.random.default_rng(5).random((h * w, c)).T
    bank64 = filter_banks._orthogonal64(c, h, w, seed=5)
    assert bank64.dtype == np.float64
    np.testing.assert_allclose(bank64, _gram_schmidt64(vecs), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(orthogonal(c, h, w, seed=5),
                                  bank64.reshape(c, h, w).astype(np.float32))


def test_bank_is_the_same_in_any_thread_and_thread_count():
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits
    specs = [(256, 64, 64, 1), (2048, 8, 8, 2), (100, 3, 3, 3)]
    main = filter_banks.make_banks(orthogonal, specs)
    others = []
    for n in (1, 2):  # BLAS threads used by numpy's QR
        with threadpool_limits(limits=n):
            others.append(filter_banks.make_banks(orthogonal, specs))
    with ThreadPoolExecutor(max_workers=1) as pool:
        others.append(pool.submit(filter_banks.make_banks, orthogonal, specs).result())
    for banks in others:
        for a, b in zip(main, banks):
            np.testing.assert_array_equal(a, b)


def test_make_banks_uses_no_thread_pool():
    src = inspect.getsource(filter_banks)
    assert "ThreadPool" not in src and "paddle" not in src.replace("PaddlePaddle", "")


def test_random_is_ortho_draws_normalised_not_orthogonalised():
    for c, h, w in [(32, 4, 4), (40, 3, 3), (8, 5, 5)]:
        o = orthogonal(c, h, w, seed=7).reshape(c, -1)
        r = random(c, h, w, seed=7).reshape(c, -1)
        # the same draws: ortho's group matrices, columns in channel order
        d = h * w
        rng = np.random.default_rng(7)
        if d >= c:
            raw = rng.random((d, c)).T
        else:
            full, rest = divmod(c, d)
            raw = np.concatenate([g.T for g in rng.random((full, d, d))]
                                 + ([rng.random((d, rest)).T] if rest else []))
        np.testing.assert_array_equal(
            r, (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32))
        np.testing.assert_allclose(np.linalg.norm(r.astype(np.float64), axis=1), 1.0, atol=1e-6)
        for a, b in orthogonal_groups(c, h, w):
            # Gram-Schmidt leaves a group's first vector as it is, only normalised
            np.testing.assert_allclose(r[a], o[a], rtol=0, atol=1e-7)
            if b - a > 1:
                assert np.abs(r[a + 1:b] - o[a + 1:b]).max() > 0.05
                gram = r[a:b].astype(np.float64) @ r[a:b].T.astype(np.float64)
                assert np.abs(gram - np.eye(b - a)).max() > 0.3
