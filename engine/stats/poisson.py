"""Seedable Poisson draws inside numba kernels, for the given-data bootstrap (:mod:`engine.stats.given`).

Every stream is xoshiro256** (Blackman & Vigna 2021) seeded by splitmix64 from (seed, stream number), so a
kernel can give every (output, factor) pair its own stream: results do not depend on the order or the
thread in which the pairs are drawn. Poisson(lam): inversion with one uniform below 10, PTRS
(Hoermann 1993, the algorithm of NumPy's generator) above; :func:`params` precomputes what a draw
needs, once per cell.
"""

from __future__ import annotations

import math

import numba
import numpy as np

U64 = np.uint64
N_PARAMS = 7


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


@numba.njit(cache=True)
def params(lam, out):  # pragma: no cover - compiled
    """What a Poisson(lam) draw needs, into ``out`` (N_PARAMS,)."""
    out[0] = lam
    out[1] = math.exp(-lam)
    if lam >= 10.0:
        b = 0.931 + 2.53 * math.sqrt(lam)
        out[2] = math.log(lam)
        out[3] = -0.059 + 0.02483 * b
        out[4] = b
        out[5] = math.log(1.1239 + 1.1328 / (b - 3.4))
        out[6] = 0.9277 - 3.6224 / (b - 2.0)


@numba.njit(inline="always")
def poisson(st, p):  # pragma: no cover - compiled
    """A Poisson draw with parameters ``p`` from :func:`params`."""
    lam = p[0]
    if lam < 10.0:
        u = uniform(st)
        k, q = 0, p[1]
        cdf = q
        while u > cdf and k < 200:
            k += 1
            q *= lam / k
            cdf += q
        return k
    loglam, a, b, log_invalpha, vr = p[2], p[3], p[4], p[5], p[6]
    while True:
        u = uniform(st) - 0.5
        v = uniform(st)
        us = 0.5 - abs(u)
        kf = (2.0 * a / us + b) * u + lam + 0.43
        if kf < 0.0:
            continue
        k = int(kf)
        if us >= 0.07 and v <= vr:
            return k
        if us < 0.013 and v > us:
            continue
        if math.log(v) + log_invalpha - math.log(a / (us * us) + b) <= -lam + k * loglam - math.lgamma(k + 1.0):
            return k


@numba.njit(cache=True)
def draws(lam, n, seed, stream):  # pragma: no cover - compiled
    """``n`` Poisson(lam) draws of one stream (for tests and checks)."""
    st = np.empty(4, U64)
    seed_stream(st, U64(seed), U64(stream))
    p = np.zeros(N_PARAMS)
    params(lam, p)
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = poisson(st, p)
    return out
