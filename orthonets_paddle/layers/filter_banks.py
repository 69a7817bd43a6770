"""Fixed filter banks for the squeeze step of channel attention (docs/DESIGN.md).

A bank is a pure function ``bank(c, h, w, seed) -> float32 [c, h, w]``; channel ``k``'s
squeeze is ``sum_hw bank[k] * x[:, k]``. ``ortho``: OrthoNets (arXiv 2311.03071); ``dct``:
FcaNet (arXiv 2012.11879); ``avg``: SENet's average pooling; ``random``: ``ortho``'s draws,
unit norm, not orthogonalised. Built in float64 numpy on the calling thread, so a bank
depends only on ``(c, h, w, seed)``.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from ..utils.hints import did_you_mean

__all__ = ["BankFn", "orthogonal", "dct", "dct_bank", "average", "random", "FILTER_BANKS",
           "get_filter_bank", "make_banks", "dct_frequencies", "orthogonal_groups"]

BankFn = Callable[[int, int, int, int], np.ndarray]

# FcaNet's published frequency orders on a 7x7 grid (x and y indices).
_FREQS = {
    "top": ([0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1],
            [0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3]),
    "low": ([0, 0, 1, 1, 0, 2, 2, 1, 2, 0, 3, 4, 0, 1, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4],
            [0, 1, 0, 1, 2, 0, 1, 2, 2, 3, 0, 0, 4, 3, 1, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3]),
    "bot": ([6, 1, 3, 3, 2, 4, 1, 2, 4, 4, 5, 1, 4, 6, 2, 5, 6, 1, 6, 2, 2, 4, 3, 3, 5, 5, 6, 2, 5, 5, 3, 6],
            [6, 4, 4, 6, 6, 3, 1, 4, 4, 5, 6, 5, 2, 2, 5, 1, 4, 3, 5, 0, 3, 1, 1, 2, 4, 2, 1, 1, 5, 3, 3, 3]),
}
_FREQ_COUNTS = (1, 2, 4, 8, 16, 32)


def _orthonormal_columns(a: np.ndarray) -> np.ndarray:
    """Gram-Schmidt on the columns of float64 ``a`` (``[..., d, n]``, n <= d): QR with R's
    diagonal made positive is that basis, vectorised and more stable than the loop."""
    q, r = np.linalg.qr(a)
    signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    signs[signs == 0] = 1.0
    return q * signs[..., None, :]


def orthogonal_groups(c: int, h: int, w: int) -> List[Tuple[int, int]]:
    """Channel ranges ``[start, stop)`` of the mutually orthonormal groups."""
    d = h * w
    return [(0, c)] if d >= c else [(s, min(s + d, c)) for s in range(0, c, d)]


def _raw_groups(c: int, h: int, w: int, seed: int) -> List[np.ndarray]:
    """``ortho``'s and ``random``'s uniform draws: a float64 ``[d, n]`` matrix per group."""
    _check_shape(c, h, w)
    rng = np.random.default_rng(seed)
    d = h * w
    if d >= c:
        return [rng.random((d, c))]
    full, rest = divmod(c, d)
    groups = list(rng.random((full, d, d)))
    if rest:
        groups.append(rng.random((d, rest)))
    return groups


def _orthogonal64(c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.concatenate([_orthonormal_columns(g).T for g in _raw_groups(c, h, w, seed)])


def orthogonal(c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """OrthoNets' filters: uniform [0, 1) vectors orthonormalised in order; with
    ``d = h*w < c``, one basis per group of ``d`` channels (``orthogonal_groups``; the last,
    partial group is where the authors' code fails)."""
    return _orthogonal64(c, h, w, seed).reshape(c, h, w).astype(np.float32)


def dct_frequencies(method: str = "top16") -> Tuple[List[int], List[int]]:
    """FcaNet's frequency selection, e.g. ``top16``, ``low4``, ``bot32``."""
    kind, count = str(method)[:3], str(method)[3:]
    if kind not in _FREQS or not count.isdigit() or int(count) not in _FREQ_COUNTS:
        valid = ", ".join(f"{k}{n}" for k in _FREQS for n in _FREQ_COUNTS)
        raise ValueError(f"unknown DCT frequency selection {method!r}; valid: {valid}")
    xs, ys = _FREQS[kind]
    return xs[:int(count)], ys[:int(count)]


def _dct_1d(freq: int, size: int) -> np.ndarray:
    pos = np.arange(size, dtype=np.float64)
    basis = np.cos(math.pi * freq * (pos + 0.5) / size) / math.sqrt(size)
    return basis * (math.sqrt(2) if freq else 1.0)


def dct_bank(freq_sel: str = "top16") -> BankFn:
    """A DCT bank for one of FcaNet's frequency selections: as FcaNet, the 7x7 grid's
    frequencies scaled by ``h // 7``, ``w // 7`` (DC below 7x7); channel ``k`` uses
    frequency ``k * n // c``; ``seed`` is ignored."""
    xs, ys = dct_frequencies(freq_sel)  # fails here, with the valid names, not at build

    def dct_filters(c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
        _check_shape(c, h, w)
        n = len(xs)
        bank = np.empty((c, h, w), dtype=np.float64)
        for k in range(c):
            i = k * n // c
            bank[k] = np.outer(_dct_1d(xs[i] * (h // 7), h), _dct_1d(ys[i] * (w // 7), w))
        return bank.astype(np.float32)

    dct_filters.__name__ = f"dct_{freq_sel}"
    return dct_filters


dct = dct_bank("top16")
dct.__doc__ = "FcaNet's DCT filters at the ``top16`` frequencies (``dct_bank`` for others)."


def average(c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Global average pooling as a filter bank: constant ``1 / (h*w)``."""
    _check_shape(c, h, w)
    return np.full((c, h, w), 1.0 / (h * w), dtype=np.float32)


def random(c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """The control: ``ortho``'s own draws (same seed), unit L2 norm, not orthogonalised."""
    flat = np.concatenate([g.T for g in _raw_groups(c, h, w, seed)], axis=0)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    return flat.reshape(c, h, w).astype(np.float32)


def _check_shape(c: int, h: int, w: int) -> None:
    if min(c, h, w) < 1:
        raise ValueError(f"filter bank shape must be positive, got c={c}, h={h}, w={w}")


FILTER_BANKS: Dict[str, BankFn] = {"ortho": orthogonal, "dct": dct, "avg": average, "random": random}


def get_filter_bank(name: str, freq_sel: str = "top16") -> BankFn:
    """The bank function of a squeeze name (``freq_sel`` picks the DCT frequencies)."""
    if name not in FILTER_BANKS:
        raise ValueError(f"unknown squeeze {name!r}; {did_you_mean(name, FILTER_BANKS)}"
                         f"valid: {', '.join(FILTER_BANKS)}")
    return dct_bank(freq_sel) if name == "dct" and freq_sel != "top16" else FILTER_BANKS[name]


def make_banks(fn: BankFn, specs: Sequence[Tuple[int, int, int, int]]) -> List[np.ndarray]:
    """``[fn(c, h, w, seed) for each spec]`` on the calling thread (no pool: no thread race)."""
    return [fn(*spec) for spec in specs]
