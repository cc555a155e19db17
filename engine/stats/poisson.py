"""Seedable Poisson draws inside numba kernels, for the given-data bootstrap (:mod:`engine.stats.given`).

Every stream is xoshiro256** (Blackman & Vigna 2021) seeded by splitmix64 from (seed, stream number), so a
kernel can give every (output, factor) pair its own stream: results do not depend on the order or the
thread in which the pairs are drawn. Poisson(lam) is drawn by inversion with a guide table (Chen & Asau
1974): :func:`table` builds the CDF over lam +- (8 sqrt(lam) + 12), whose outside mass is below 1e-14,
once per cell; each draw then takes one uniform and one or two comparisons. The bootstrap draws many
(here 100) values per cell, so building the table costs about as much as drawing them.
"""

from __future__ import annotations

import math

import numba
import numpy as np

U64 = np.uint64


@numba.njit(inline="always")
def _rotl(x, k):  # pragma: no cover - compiled
    return (x << U64(k)) | (x >> U64(64 - k))


@numba.njit(inline="always")
def _next(st):  # pragma: no cover - compiled
    """The next 64 random bits of xoshiro256** state ``st`` (4 uint64)."""
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    res = _rotl(s1 * U64(5), 7) * U64(9)
    t = s1 << U64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    st[0], st[1], st[2], st[3] = s0, s1, s2, s3
    return res


@numba.njit(inline="always")
def uniform(st):  # pragma: no cover - compiled
    """A uniform double in [0, 1) (53 random bits)."""
    return float(_next(st) >> U64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True)
def seed_stream(st, seed, stream):  # pragma: no cover - compiled
    """Seed state ``st`` for stream number ``stream`` of ``seed`` (both uint64), by splitmix64."""
    x = seed ^ (stream * U64(0x9E3779B97F4A7C15))
    for i in range(4):
        x += U64(0x9E3779B97F4A7C15)
        z = x
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
        st[i] = z ^ (z >> U64(31))


def table_size(lam_max: float) -> int:
    """Scratch length :func:`table` needs for means up to ``lam_max``."""
    return int(16 * math.sqrt(max(lam_max, 0.0)) + 30)


@numba.njit(cache=True)
def table(lam, cdf, guide):  # pragma: no cover - compiled
    """The CDF of Poisson(lam) > 0 on [lo, lo + L) into ``cdf`` and its guide table into ``guide``;
    returns (lo, L)."""
    sd = math.sqrt(lam)
    lo = max(0, int(lam - 8.0 * sd - 2.0))
    L = int(lam + 8.0 * sd + 12.0) - lo + 1
    mode = int(lam)
    cdf[mode - lo] = math.exp(mode * math.log(lam) - lam - math.lgamma(mode + 1.0))
    for k in range(mode + 1, lo + L):
        cdf[k - lo] = cdf[k - 1 - lo] * lam / k
    for k in range(mode - 1, lo - 1, -1):
        cdf[k - lo] = cdf[k + 1 - lo] * (k + 1) / lam
    total = 0.0
    for i in range(L):
        total += cdf[i]
        cdf[i] = total
    for i in range(L):
        cdf[i] /= total
    cdf[L - 1] = 1.0
    j = 0
    for i in range(L):
        t = i / L
        while cdf[j] < t:
            j += 1
        guide[i] = j
    return lo, L


@numba.njit(inline="always")
def draw(st, cdf, guide, lo, L):  # pragma: no cover - compiled
    """A draw from the distribution tabled by :func:`table`: the smallest k with CDF(k) >= u."""
    u = uniform(st)
    j = guide[int(u * L)]
    while cdf[j] < u:
        j += 1
    return lo + j


def draws(lam: float, n: int, seed: int, stream: int) -> np.ndarray:
    """``n`` Poisson(lam) draws of one stream (for tests and checks)."""
    size = table_size(lam)
    return _draws(float(lam), n, U64(seed), U64(stream), np.empty(size), np.empty(size, np.int64))


@numba.njit(cache=True)
def _draws(lam, n, seed, stream, cdf, guide):  # pragma: no cover - compiled
    st = np.empty(4, U64)
    seed_stream(st, seed, stream)
    lo, L = table(lam, cdf, guide)
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = draw(st, cdf, guide, lo, L)
    return out
