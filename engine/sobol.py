"""Sobol' indices for many outputs at once: SALib 1.6's estimators, vectorised over outputs and resamples.

Rows follow ``SALib.sample.sobol.sample``: for each base sample, consecutive rows
A, AB_1..AB_D, [BA_1..BA_D when sampled with second order], B (D = number of groups when
groups are given). Estimators are those of ``SALib.analyze.sobol.analyze``: every output is first
normalised as ``(Y - Y.mean()) / Y.std()`` over all its rows (this matters: S1 and S2 are not
shift-invariant), then S1 = mean(B*(AB-A))/var (Saltelli 2010), ST = 0.5*mean((A-AB)**2)/var (Jansen),
S2 as Saltelli 2002, var = var(r_[A, B]) with ddof 0; each index is 0 when var <= float eps.

Every bootstrap statistic is a sum over base samples weighted by how often a resample drew them,
so all outputs and resamples are one matmul per chunk of outputs: (terms × N) @ (N × resamples).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

_EPS = np.finfo(float).eps
_CHUNK_BYTES = 384 * 2**20


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


def _estimates(sums: np.ndarray, n: int, D: int, j: np.ndarray, k: np.ndarray,
               ok: np.ndarray) -> tuple[np.ndarray, ...]:
    """S1, ST (c, D, K) and S2 (c, P, K) from weighted sums (c, T, K) over n base samples.

    Term order: A+B, A²+B², B*(AB_i-A) (D), (A-AB_i)² (D), BA_j*AB_k - A*B for the P pairs (j, k).
    Outputs with ``ok`` False, and resamples whose var <= eps, get 0.
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

    Y: (N*(2D+2) or N*(D+2), M) outputs in SALib row order (a 1-D Y is one output).
    Returns S1, ST, S1_conf, ST_conf (D, M); S2, S2_conf (D, D, M) when ``second_order``
    (upper triangle, NaN on and below the diagonal as SALib); 'constant' (M,) bool: outputs whose
    A and B rows do not vary, for which every index and conf is 0 (SALib gives NaN or warns);
    with ``keep_resamples`` also S1_conf_all, ST_conf_all (R, D, M).
    ``design_second_order`` (default ``second_order``) says how Y was sampled: S1/ST alone can be
    computed from a second-order design. Point estimates are float64 (SALib's to ~1e-13); the
    bootstrap sums use ``dtype`` (float32: ~2.5x faster, confs within ~1e-4 relative of float64).
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
    P = D * (D - 1) // 2 if second_order else 0
    T = 2 + 2 * D + P
    j, k = np.triu_indices(D, 1) if second_order else (np.zeros(0, int), np.zeros(0, int))
    counts_t = resample_counts(n, R, seed).T.astype(dtype)
    z = norm.ppf(0.5 + conf_level / 2)

    per_output = n * (step * 16 + 2 * D * 8 + T * np.dtype(dtype).itemsize) + T * R * 24
    chunk = chunk_outputs or max(1, _CHUNK_BYTES // per_output)
    chunk = min(chunk, M)
    buf = np.empty((chunk, T, n), dtype)

    out = {key: np.zeros((D, M)) for key in ("S1", "ST", "S1_conf", "ST_conf")}
    if second_order:
        out["S2"], out["S2_conf"] = np.full((D, D, M), np.nan), np.full((D, D, M), np.nan)
    if keep_resamples:
        out["S1_conf_all"], out["ST_conf_all"] = np.zeros((R, D, M)), np.zeros((R, D, M))
    out["constant"] = np.zeros(M, bool)

    for lo in range(0, M, chunk):
        sl = slice(lo, min(lo + chunk, M))
        c = sl.stop - lo
        Yc = Y[:, sl].astype(np.float64)
        mu, sd = Yc.mean(axis=0), Yc.std(axis=0)
        varying = np.ptp(Yc, axis=0) > 0
        # (c, step, n): row block r of output i is contiguous; normalised as SALib does
        Zc = np.ascontiguousarray(Yc.T.reshape(c, n, step).transpose(0, 2, 1))
        Zc -= mu[:, None, None]
        Zc *= np.divide(1.0, sd, out=np.zeros(c), where=varying)[:, None, None]
        A, B, AB = Zc[:, 0], Zc[:, step - 1], Zc[:, 1 : D + 1]

        t1 = B[:, None] * (AB - A[:, None])
        tt = np.square(A[:, None] - AB)
        point = np.empty((c, T, 1))
        point[:, 0, 0] = A.sum(-1) + B.sum(-1)
        point[:, 1, 0] = np.square(A).sum(-1) + np.square(B).sum(-1)
        point[:, 2 : 2 + D, 0] = t1.sum(-1)
        point[:, 2 + D : 2 + 2 * D, 0] = tt.sum(-1)
        bc = buf[:c]
        np.add(A, B, out=bc[:, 0], casting="same_kind")
        np.add(np.square(A), np.square(B), out=bc[:, 1], casting="same_kind")
        bc[:, 2 : 2 + D] = t1
        bc[:, 2 + D : 2 + 2 * D] = tt
        del t1, tt
        if second_order:
            BA = Zc[:, D + 1 : 2 * D + 1]
            ab = (A * B)[:, None]
            point[:, 2 + 2 * D :, 0] = (BA @ AB.transpose(0, 2, 1))[:, j, k] - ab.sum(-1)
            ab = ab.astype(dtype)
            off = 2 + 2 * D
            for jj in range(D - 1):  # BA_j * AB_k - A*B for k > j
                seg = bc[:, off : off + D - 1 - jj]
                np.multiply(BA[:, jj : jj + 1], AB[:, jj + 1 :], out=seg, casting="same_kind")
                seg -= ab
                off += D - 1 - jj

        ok = np.var(Zc[:, [0, step - 1]].reshape(c, 2 * n), axis=1) > _EPS
        s1, st, s2 = (e[..., 0] for e in _estimates(point, n, D, j, k, ok))
        sums = (bc.reshape(c * T, n) @ counts_t).reshape(c, T, R).astype(np.float64)
        b1, bt, b2 = _estimates(sums, n, D, j, k, ok)

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
