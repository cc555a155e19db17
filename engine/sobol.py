"""Sobol' indices for many outputs at once: SALib 1.6's estimators, vectorised over outputs and resamples.

Rows follow ``SALib.sample.sobol.sample``: for each base sample, consecutive rows
A, AB_1..AB_D, [BA_1..BA_D when sampled with second order], B (D = number of groups when
groups are given). Estimators are those of ``SALib.analyze.sobol.analyze``: every output is first
normalised as ``(Y - Y.mean()) / Y.std()`` over all its rows (this matters: S1 and S2 are not
shift-invariant), then S1 = mean(B*(AB-A))/var (Saltelli 2010), ST = 0.5*mean((A-AB)**2)/var (Jansen),
S2 as Saltelli 2002, var = var(r_[A, B]) with ddof 0; each index is 0 when var <= float eps.

Every bootstrap statistic is a sum over base samples weighted by how often a resample drew them,
so all outputs and resamples are one matmul per chunk of outputs: counts (R × N) @ terms (N × T·c).
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.stats import norm

_EPS = np.finfo(float).eps
_CHUNK_BYTES = 256 * 2**20  # terms of one chunk of outputs, all base samples
_BLOCK_BYTES = 2 * 2**20  # terms of one block of base samples: cache-sized


def block_labels(names: list[str], second_order: bool) -> list[str]:
    """Row labels within one Saltelli block: 'A', 'AB_<name>'..., ['BA_<name>'...], 'B'."""
    ba = [f"BA_{n}" for n in names] if second_order else []
    return ["A", *(f"AB_{n}" for n in names), *ba, "B"]


def sobol_problem(names: list[str], groups: list[str] | None = None) -> dict:
    """A SALib problem dict over unit-interval factors, optionally grouped."""
    problem = {"num_vars": len(names), "names": list(names), "bounds": [[0.0, 1.0]] * len(names)}
    if groups is not None:
        problem["groups"] = list(groups)
    return problem


def resample_counts(n: int, num_resamples: int, seed: int | None) -> np.ndarray:
    """(num_resamples, n) counts of each base sample in each bootstrap resample.

    Draws the indices as SALib does for a truthy seed (``default_rng(seed).integers(n, size=(n, R))``),
    so with the same non-zero seed the resamples are exactly SALib's.
    """
    idx = np.random.default_rng(seed).integers(n, size=(n, num_resamples))
    flat = (idx + n * np.arange(num_resamples)).ravel()
    return np.bincount(flat, minlength=n * num_resamples).reshape(num_resamples, n)


@numba.njit(parallel=True, cache=True)
def _moments(Y, nblocks):  # pragma: no cover - compiled
    """Mean, std (ddof 0) and whether it varies, of every column of Y (one pass, shifted by row 0)."""
    rows, M = Y.shape
    shift = Y[0].astype(np.float64)
    s = np.zeros((nblocks, M))
    s2 = np.zeros((nblocks, M))
    ndiff = np.zeros((nblocks, M))
    for b in numba.prange(nblocks):
        for r in range(b * rows // nblocks, (b + 1) * rows // nblocks):
            for m in range(M):
                v = Y[r, m] - shift[m]
                s[b, m] += v
                s2[b, m] += v * v
                ndiff[b, m] += v != 0
    mean = s.sum(axis=0) / rows
    var = np.maximum(s2.sum(axis=0) / rows - mean * mean, 0.0)
    return shift + mean, np.sqrt(var), ndiff.sum(axis=0) > 0


@numba.njit(parallel=True, cache=True)
def _fill_terms(Y, lo, i0, mu, inv_sd, D, step, second_order, buf, part):  # pragma: no cover - compiled
    """Bootstrap terms of base samples i0.. into buf (rows, T, c), adding their float64 sums to part.

    Term order: A+B, A²+B², B*(AB_d-A) (D), (A-AB_d)² (D), [BA_j*AB_k - A*B for j < k], on the
    normalised outputs z = (y - mu) * inv_sd of columns lo..lo+c.
    """
    n, _, c = buf.shape
    nblocks = part.shape[0]
    for b in numba.prange(nblocks):
        za = np.empty(c)
        zb = np.empty(c)
        zab = np.empty((D, c))
        zba = np.empty((D, c))
        acc = part[b]
        for i in range(b * n // nblocks, (b + 1) * n // nblocks):
            r = (i0 + i) * step
            out = buf[i]
            for m in range(c):
                za[m] = (Y[r, lo + m] - mu[m]) * inv_sd[m]
                zb[m] = (Y[r + step - 1, lo + m] - mu[m]) * inv_sd[m]
            for d in range(D):
                for m in range(c):
                    zab[d, m] = (Y[r + 1 + d, lo + m] - mu[m]) * inv_sd[m]
            for m in range(c):
                v = za[m] + zb[m]
                out[0, m] = v
                acc[0, m] += v
                v = za[m] * za[m] + zb[m] * zb[m]
                out[1, m] = v
                acc[1, m] += v
            for d in range(D):
                for m in range(c):
                    v = zb[m] * (zab[d, m] - za[m])
                    out[2 + d, m] = v
                    acc[2 + d, m] += v
                    v = (za[m] - zab[d, m]) ** 2
                    out[2 + D + d, m] = v
                    acc[2 + D + d, m] += v
            if second_order:
                for d in range(D):
                    for m in range(c):
                        zba[d, m] = (Y[r + 1 + D + d, lo + m] - mu[m]) * inv_sd[m]
                t = 2 + 2 * D
                for j in range(D - 1):
                    for k in range(j + 1, D):
                        for m in range(c):
                            v = zba[j, m] * zab[k, m] - za[m] * zb[m]
                            out[t, m] = v
                            acc[t, m] += v
                        t += 1


def _estimates(sums: np.ndarray, n: int, D: int, j: np.ndarray, k: np.ndarray,
               ok: np.ndarray) -> tuple[np.ndarray, ...]:
    """S1, ST (c, D, K) and S2 (c, P, K) from term sums (c, T, K) over n base samples.

    Outputs with ``ok`` False, and resamples whose var <= eps, get 0 (as SALib).
    """
    mean = sums[:, 0] / (2 * n)
    var = sums[:, 1] / (2 * n) - mean * mean
    inv = np.divide(1.0 / n, var, out=np.zeros_like(var), where=(var > _EPS) & ok[:, None])[:, None]
    s1 = sums[:, 2 : 2 + D] * inv
    st = 0.5 * sums[:, 2 + D : 2 + 2 * D] * inv
    s2 = sums[:, 2 + 2 * D :] * inv - s1[:, j] - s1[:, k]
    return s1, st, s2


def sobol_indices(Y: np.ndarray, D: int, *, second_order: bool = False, num_resamples: int = 100,
                  conf_level: float = 0.95, seed: int | None = 0, keep_resamples: bool = False,
                  chunk_outputs: int | None = None, design_second_order: bool | None = None,
                  dtype: type = np.float32) -> dict[str, np.ndarray]:
    """Sobol' indices and bootstrap confidences for every column of ``Y``.

    Y: (N*(2D+2) or N*(D+2), M) outputs in SALib row order, any real dtype (a 1-D Y is one output).
    Returns S1, ST, S1_conf, ST_conf (D, M); S2, S2_conf (D, D, M) when ``second_order``
    (upper triangle, NaN on and below the diagonal as SALib); 'constant' (M,) bool: outputs whose
    A and B rows do not vary, for which every index and conf is 0 (SALib gives NaN or warns);
    with ``keep_resamples`` also S1_conf_all, ST_conf_all (R, D, M).
    ``design_second_order`` (default ``second_order``) says how Y was sampled: S1/ST alone can be
    computed from a second-order design. Point estimates are float64 (SALib's to ~1e-13); the
    bootstrap sums use ``dtype`` (float32: ~2x faster, confs within ~1e-6 relative of float64).
    With a non-zero seed the resamples are SALib's ``analyze(..., seed=seed)`` draws.
    """
    Y = np.asarray(Y)
    Y = Y.reshape(len(Y), -1)
    design_so = second_order if design_second_order is None else design_second_order
    if second_order and not design_so:
        raise ValueError("second-order indices need a design sampled with second order")
    step = 2 * D + 2 if design_so else D + 2
    if D < 1 or len(Y) % step or not len(Y):
        raise ValueError(f"Y has {len(Y)} rows: not a multiple of {step} = {'2D+2' if design_so else 'D+2'} "
                         f"for D = {D}; check D and whether the design was sampled with second order")
    if num_resamples < 2 or not 0 < conf_level < 1:
        raise ValueError("need num_resamples >= 2 and 0 < conf_level < 1")
    n, M, R = len(Y) // step, Y.shape[1], num_resamples
    j, k = np.triu_indices(D, 1) if second_order else (np.zeros(0, int), np.zeros(0, int))
    T = 2 + 2 * D + len(j)
    counts = resample_counts(n, R, seed).astype(dtype)
    z = norm.ppf(0.5 + conf_level / 2)
    nblocks = max(1, min(16, n // 64))

    chunk = min(M, chunk_outputs or max(1, _CHUNK_BYTES // (n * T * np.dtype(dtype).itemsize)))
    block = max(1, min(n, _BLOCK_BYTES // (T * chunk * np.dtype(dtype).itemsize)))
    buf = np.empty(block * T * chunk, dtype)
    mu, sd, varying = _moments(Y, nblocks)
    inv_sd = np.divide(1.0, sd, out=np.zeros(M), where=varying & (sd > 0))

    out = {key: np.zeros((D, M)) for key in ("S1", "ST", "S1_conf", "ST_conf")}
    if second_order:
        out["S2"], out["S2_conf"] = np.full((D, D, M), np.nan), np.full((D, D, M), np.nan)
    if keep_resamples:
        out["S1_conf_all"], out["ST_conf_all"] = np.zeros((R, D, M)), np.zeros((R, D, M))
    out["constant"] = np.zeros(M, bool)

    for lo in range(0, M, chunk):
        c = min(chunk, M - lo)
        sl = slice(lo, lo + c)
        part = np.zeros((nblocks, T, c))
        sums = np.zeros((R, T * c))
        for i0 in range(0, n, block):
            rows = min(block, n - i0)
            bc = buf[: rows * T * c].reshape(rows, T, c)
            _fill_terms(Y, lo, i0, mu[sl], inv_sd[sl], D, step, second_order, bc, part)
            sums += counts[:, i0 : i0 + rows] @ bc.reshape(rows, T * c)
        point = part.sum(axis=0).T[:, :, None]
        ok = point[:, 1, 0] / (2 * n) - (point[:, 0, 0] / (2 * n)) ** 2 > _EPS
        s1, st, s2 = (e[..., 0] for e in _estimates(point, n, D, j, k, ok))
        b1, bt, b2 = _estimates(sums.reshape(R, T, c).transpose(2, 1, 0), n, D, j, k, ok)

        out["constant"][sl] = ~ok
        out["S1"][:, sl], out["ST"][:, sl] = s1.T, st.T
        out["S1_conf"][:, sl] = z * b1.std(axis=-1, ddof=1).T
        out["ST_conf"][:, sl] = z * bt.std(axis=-1, ddof=1).T
        if second_order:
            out["S2"][j, k, sl] = s2.T
            out["S2_conf"][j, k, sl] = z * b2.std(axis=-1, ddof=1).T
        if keep_resamples:
            out["S1_conf_all"][:, :, sl] = b1.transpose(2, 1, 0)
            out["ST_conf_all"][:, :, sl] = bt.transpose(2, 1, 0)
    return out
