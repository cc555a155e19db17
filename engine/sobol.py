"""Sobol' indices for many outputs at once: SALib 1.6's estimators, vectorised over outputs and resamples.

Rows follow ``SALib.sample.sobol.sample``: for each base sample, consecutive rows
A, AB_1..AB_D, [BA_1..BA_D when sampled with second order], B (D = number of groups when
groups are given). Estimators are those of ``SALib.analyze.sobol.analyze``: every output is first
normalised as ``(Y - Y.mean()) / Y.std()`` over all its rows (this matters: S1 and S2 are not
shift-invariant), then S1 = mean(B*(AB-A))/var (Saltelli 2010), ST = 0.5*mean((A-AB)**2)/var (Jansen),
S2 as Saltelli 2002, var = var(r_[A, B]) with ddof 0; each index is 0 when var <= float eps.

Every bootstrap statistic is a sum over base samples weighted by how often a resample drew them,
so all outputs and resamples are matmuls: terms (outputs·T × base samples) @ counts (base samples × R),
over chunks of outputs and blocks of base samples (a numba kernel writes the terms).
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt
from scipy.stats import norm

_EPS = np.finfo(float).eps
_CHUNK_TERMS = 4096  # outputs per chunk × terms per output: rows of one matmul
_BLOCK_BYTES = 32 * 2**20  # scratch for one block of base samples × one chunk of outputs


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


_FASTMATH = {"reassoc", "contract"}  # lets sums vectorise; NaN/inf semantics kept


@numba.njit(parallel=True, fastmath=_FASTMATH, cache=True)
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


@numba.njit(parallel=True, fastmath=_FASTMATH, cache=True)
def _fill_terms(Y, lo, i0, mu, inv_sd, D, step, second_order, z, buf, part):  # pragma: no cover - compiled
    """Bootstrap terms of base samples i0..i0+nb, outputs lo..lo+c, into buf (c, T, nb); adds their sums to part.

    z (c, step, nb) is scratch for the normalised outputs (y - mu) * inv_sd. Term order: A+B, A²+B²,
    B*(AB_d-A) (D), (A-AB_d)² (D), [BA_j*AB_k - A*B for j < k]. part (c, T) is float64.
    """
    c, T, nb = buf.shape
    for i8 in numba.prange((nb + 7) // 8):  # 8 x 8 tiles: whole cache lines in and out
        for rt in range(step):
            if not second_order and D < rt < step - 1:
                continue  # BA rows are unused
            for m0 in range(0, c, 8):
                for m in range(m0, min(c, m0 + 8)):
                    for i in range(8 * i8, min(nb, 8 * i8 + 8)):
                        z[m, rt, i] = (Y[(i0 + i) * step + rt, lo + m] - mu[m]) * inv_sd[m]
    for m in numba.prange(c):
        zm, o, acc = z[m], buf[m], part[m]
        a, b = zm[0], zm[step - 1]
        s0 = s1 = 0.0
        for i in range(nb):
            v = a[i] + b[i]
            o[0, i] = v
            s0 += v
            w = a[i] * a[i] + b[i] * b[i]
            o[1, i] = w
            s1 += w
        acc[0] += s0
        acc[1] += s1
        for d in range(D):
            ab = zm[1 + d]
            s0 = s1 = 0.0
            for i in range(nb):
                v = b[i] * (ab[i] - a[i])
                o[2 + d, i] = v
                s0 += v
                w = (a[i] - ab[i]) ** 2
                o[2 + D + d, i] = w
                s1 += w
            acc[2 + d] += s0
            acc[2 + D + d] += s1
        if second_order:
            t = 2 + 2 * D
            for j in range(D - 1):
                ba = zm[1 + D + j]
                for k in range(j + 1, D):
                    ab = zm[1 + k]
                    s0 = 0.0
                    for i in range(nb):
                        v = ba[i] * ab[i] - a[i] * b[i]
                        o[t, i] = v
                        s0 += v
                    acc[t] += s0
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
                  dtype: npt.DTypeLike = np.float32) -> dict[str, np.ndarray]:
    """Sobol' indices and bootstrap confidences for every column of ``Y``.

    Y: (N*(2D+2) or N*(D+2), M) outputs in SALib row order, any real dtype (a 1-D Y is one output).
    Returns S1, ST, S1_conf, ST_conf (D, M); S2, S2_conf (D, D, M) when ``second_order``
    (upper triangle, NaN on and below the diagonal as SALib); 'constant' (M,) bool: outputs whose
    A and B rows have zero variance, for which every index and conf is 0 (SALib gives 0 too, with warnings);
    with ``keep_resamples`` also S1_conf_all, ST_conf_all (R, D, M).
    ``design_second_order`` (default ``second_order``) says how Y was sampled: S1/ST alone can be
    computed from a second-order design. Point estimates are float64 (SALib's to ~1e-13); the
    bootstrap sums use ``dtype`` (float32: faster, confs within ~1e-5 relative of float64).
    With a non-zero seed the resamples are SALib's ``analyze(..., seed=seed)`` draws.
    The numba kernels use ``numba.get_num_threads()`` threads: set 1 inside single-threaded workers.
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
    counts_t = np.ascontiguousarray(resample_counts(n, R, seed).T, dtype=dtype)
    q = norm.ppf(0.5 + conf_level / 2)
    chunk = min(M, chunk_outputs or max(2, _CHUNK_TERMS // T))
    block = min(n, max(256, _BLOCK_BYTES // (chunk * (8 * step + T * np.dtype(dtype).itemsize))))
    zbuf = np.empty(chunk * step * block)
    tbuf = np.empty(chunk * T * block, dtype)
    mu, sd, varying = _moments(Y, max(1, min(64, len(Y) // 1024)))
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
        part = np.zeros((c, T))
        sums = np.zeros((c * T, R))
        for i0 in range(0, n, block):
            nb = min(block, n - i0)
            zb, tb = zbuf[: c * step * nb].reshape(c, step, nb), tbuf[: c * T * nb].reshape(c, T, nb)
            _fill_terms(Y, lo, i0, mu[sl], inv_sd[sl], D, step, second_order, zb, tb, part)
            sums += tb.reshape(c * T, nb) @ counts_t[i0 : i0 + nb]
        ok = part[:, 1] / (2 * n) - (part[:, 0] / (2 * n)) ** 2 > _EPS  # SALib's var(r_[A, B]) > eps
        s1, st, s2 = (e[..., 0] for e in _estimates(part[:, :, None], n, D, j, k, ok))
        b1, bt, b2 = _estimates(sums.reshape(c, T, R), n, D, j, k, ok)

        out["constant"][sl] = ~ok
        out["S1"][:, sl], out["ST"][:, sl] = s1.T, st.T
        out["S1_conf"][:, sl] = q * b1.std(axis=-1, ddof=1).T
        out["ST_conf"][:, sl] = q * bt.std(axis=-1, ddof=1).T
        if second_order:
            out["S2"][j, k, sl] = s2.T
            out["S2_conf"][j, k, sl] = q * b2.std(axis=-1, ddof=1).T
        if keep_resamples:
            out["S1_conf_all"][:, :, sl] = b1.transpose(2, 1, 0)
            out["ST_conf_all"][:, :, sl] = bt.transpose(2, 1, 0)
    return out
