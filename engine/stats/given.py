"""Sensitivity from given data (a plain Monte Carlo sample), accumulated chunk by chunk, merged by addition.

Every factor is cut into bins (a discrete factor's bins are its choices; a continuous one's are
equal-probability bins, see :mod:`engine.stats.given_run`), every output into classes (:class:`Classes`:
a rank's classes are its values, 0 = no score included; a score's are equal-probability classes, plus one
for NaN). :class:`GivenSums` holds, per output:

* per factor bin, the sum of the output (``binsum``; for ranks it follows from the table) and, per bin
  and class, how many scenarios fell in both (``table``, int32); per bin the number of scenarios
  (``count``, shared by all outputs);
* the output's sum and sum of squares, its range and the sum of its values per class.

Estimators (per output and factor, vectorised over both):

* ``S1`` = Var(E[Y | bin]) / Var(Y) = sum_b n_b (mean_b - mean)^2 / (N Var(Y)), Var with ddof 0: the
  partition (binning) estimator of the first-order index from given data (Plischke 2010; Li & Mahadevan
  2016); with SALib's partition it is SALib's ``delta.sobol_first`` (to rounding);
* ``delta_hat`` = 1/(2N) sum_b sum_k |T_bk - n_b T_k / N|: Borgonovo's (2007) delta of the binned factor,
  with the output's distribution taken over its classes. For ranks the classes are the ranks themselves,
  so the conditional distributions are exact discrete distributions: delta = 1/2 E_bin sum_r
  |P(r) - P(r | bin)|. For scores it is the histogram estimator on equal-probability classes
  (Plischke, Borgonovo & Smith 2013; SALib's ``delta`` uses kernel density estimates instead).

Intervals are a Poisson bootstrap of the scenarios, drawn when the indices are finished: with every
scenario weighted by an independent Poisson(1) count, the cells of one (output, factor) table are
independent Poisson(T_bk) counts, so drawing those is exactly the scenario bootstrap of that pair, and
the sweep keeps no per-resample state. A replicate's S1 takes each value as its class mean (exact for
ranks; for scores it leaves out the noise within a class, O(1/classes^2) of the variance). ``delta`` is
bias-reduced as in Plischke, Borgonovo & Smith (2013, eq. 30) and SALib: 2 delta_hat - mean(delta*), with
``delta_bias`` = mean(delta*) - delta_hat; confs are z * std of the replicates, as SALib's. The bootstrap
treats scenarios as independent draws: for a scrambled Sobol' (quasi-Monte Carlo) sample the intervals
are conservative and the bias reduction can overshoot; a factor without influence keeps a small positive
delta (the estimator's noise floor, shrinking as 1/sqrt(scenarios per bin)).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from ..spec import Factor
from .poisson import U64, draw, seed_stream, table_size
from .poisson import table as cdf_table

SCORE_CLASSES = 16  # equal-probability classes of a score or R-bar (plus one for NaN)
RANK_CLASSES = 64  # ranks 0..C as they are while C + 1 <= this; merged into classes of equal width beyond


def plischke_bins(n: int) -> int:
    """The number of equal-frequency classes of SALib's ``delta`` (Plischke, Borgonovo & Smith 2013)."""
    exp = 2.0 / (7.0 + np.tanh((1500.0 - n) / 500.0))
    return int(np.round(min(int(np.ceil(n**exp)), 48)))


def factor_bins(factors: Sequence[Factor], n_bins: Sequence[int], x: np.ndarray) -> np.ndarray:
    """Bin of every design value (factor, scenario): the choice of a discrete factor, else the
    equal-probability bin of u in [0, 1)."""
    out = np.empty((len(factors), len(x)), np.int32)
    for j, (f, b) in enumerate(zip(factors, n_bins, strict=True)):
        out[j] = f.index(x[:, j]) if f.discrete else np.minimum((x[:, j] * b).astype(np.int64), b - 1)
    return out


def quantile_edges(y: np.ndarray, classes: int) -> np.ndarray:
    """(outputs, classes - 1) inner edges of equal-probability classes of each column of ``y`` (n, outputs),
    NaNs ignored; repeated edges (few distinct values) are dropped and the rest padded with +inf."""
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    q = np.arange(1, classes) / classes
    out = np.full((y.shape[1], classes - 1), np.inf)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
            edges = np.nanquantile(y, q, axis=0).T
    for m, e in enumerate(edges):
        e = np.unique(e[np.isfinite(e)])
        out[m, : len(e)] = e
    return out


@dataclass(frozen=True)
class Classes:
    """How one output set's values fall into ``K`` classes: integers ``y // width`` (ranks, ``width`` > 0),
    or by inner ``edges`` (outputs, K - 2) with the last class for NaN."""

    K: int
    width: int = 0
    edges: np.ndarray | None = None

    @classmethod
    def ranks(cls, n_cities: int, max_classes: int = RANK_CLASSES) -> Classes:
        width = -(-(n_cities + 1) // max_classes)
        return cls(-(-(n_cities + 1) // width), width)

    @classmethod
    def quantiles(cls, pilot: np.ndarray, classes: int = SCORE_CLASSES) -> Classes:
        return cls(classes + 1, 0, quantile_edges(pilot, classes))


class GivenSums:
    """Mergeable given-data sums of ``M`` outputs over factors with ``n_bins`` bins each.

    :meth:`add` chunks (bins (factor, scenario), outputs (scenario, M)), :meth:`merge` another instance's
    sums, :meth:`result` the indices. Counts are integers (exact in any order); float sums are of
    ``y - shift`` (a constant per output, e.g. the nominal value, keeps them well conditioned).
    """

    def __init__(self, n_bins: Sequence[int], M: int, classes: Classes, shift: np.ndarray | float = 0.0) -> None:
        self.n_bins = np.asarray(n_bins, np.int64)
        self.off = np.r_[0, np.cumsum(self.n_bins)].astype(np.int64)
        self.M, self.classes = M, classes
        B, K = int(self.off[-1]), classes.K
        self.shift = np.broadcast_to(np.nan_to_num(np.asarray(shift, np.float64)), (M,)).copy()
        self.count = np.zeros(B, np.int64)
        self.table = np.zeros((M, B, K), np.int32)
        self.binsum = np.zeros((M, B) if classes.width != 1 else (0, 0))  # ranks: from the table
        self.classsum = np.zeros((M, K))
        self.total, self.total2 = np.zeros(M), np.zeros(M)
        self.lo, self.hi = np.full(M, np.inf), np.full(M, -np.inf)

    @property
    def rows(self) -> int:
        return int(self.count[: self.off[1]].sum()) if len(self.n_bins) else 0

    def add(self, bins: np.ndarray, Y: np.ndarray) -> None:
        """Add scenarios: ``bins`` (factor, scenario) in [0, n_bins), ``Y`` (scenario, M) outputs."""
        Y = np.ascontiguousarray(Y).reshape(len(Y), -1)
        bins = np.ascontiguousarray(bins, np.int32)
        if Y.shape[1] != self.M or bins.shape != (len(self.n_bins), len(Y)):
            raise ValueError(f"need bins ({len(self.n_bins)}, n) and Y (n, {self.M}); got {bins.shape}, {Y.shape}")
        if len(Y) and (bins.min() < 0 or (bins >= self.n_bins[:, None]).any()):
            raise ValueError("a bin index is outside 0..n_bins-1")
        c = self.classes
        edges = c.edges if c.edges is not None else np.zeros((self.M, 0))
        _accumulate(bins, self.off, Y, self.shift, c.width, edges, self.table, self.binsum.size > 0, self.binsum,
                    self.classsum,
                    self.count, self.total, self.total2, self.lo, self.hi)

    def merge(self, other: GivenSums) -> GivenSums:
        if not (np.array_equal(self.n_bins, other.n_bins) and self.table.shape == other.table.shape
                and np.array_equal(self.shift, other.shift)):
            raise ValueError("cannot merge given-data sums of different factors, bins, classes or outputs")
        for name in ("count", "table", "binsum", "classsum", "total", "total2"):
            getattr(self, name)[...] += getattr(other, name)
        self.lo, self.hi = np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi)
        return self

    def export(self) -> dict:
        """The state as plain arrays and numbers (what a worker sends)."""
        out = {k: v for k, v in self.__dict__.items() if k != "classes"}
        c = self.classes
        out.update(K=c.K, width=c.width, edges=c.edges)
        return out

    @classmethod
    def from_export(cls, state: dict) -> GivenSums:
        obj = cls.__new__(cls)
        obj.__dict__.update({k: (np.array(v) if isinstance(v, np.ndarray) else v)  # writable copies
                             for k, v in state.items() if k not in ("K", "width", "edges")})
        edges = state["edges"]
        obj.classes = Classes(int(state["K"]), int(state["width"]), None if edges is None else np.asarray(edges))
        return obj

    def _binsum(self) -> np.ndarray:
        """Per output and bin, the sum of y - shift (exact integer classes: from the table)."""
        if self.binsum.size or not self.M:
            return self.binsum
        value = np.arange(self.classes.K, dtype=np.int64)
        return (self.table @ value).astype(np.float64) - self.shift[:, None] * self.count[None, :]

    def result(self, num_resamples: int = 100, conf_level: float = 0.95, seed: int = 0) -> dict[str, np.ndarray]:
        """S1, S1_conf, delta (bias-reduced), delta_conf, delta_bias, delta_hat, each (factor, M); constant (M,)."""
        if num_resamples < 2 or not 0 < conf_level < 1:
            raise ValueError("need num_resamples >= 2 and 0 < conf_level < 1")
        D = len(self.n_bins)
        out = np.zeros((6, D, self.M))
        if self.rows:
            _finish(self.table, self._binsum(), self.count, self.off, self.classsum, self.total, self.total2,
                    self.lo, self.hi, int(num_resamples), np.uint64(seed % 2**63), out,
                    max(1, min(self.M, numba.get_num_threads())), table_size(self.rows))
        s1, s1_sd, d_hat, d_mean, d_sd, _ = out
        q = statistics.NormalDist().inv_cdf(0.5 + conf_level / 2)
        if not self.rows:
            s1[...] = s1_sd[...] = d_hat[...] = d_mean[...] = d_sd[...] = np.nan
        return {"S1": s1, "S1_conf": q * s1_sd, "delta": 2 * d_hat - d_mean, "delta_conf": q * d_sd,
                "delta_bias": d_mean - d_hat, "delta_hat": d_hat, "constant": ~(self.hi > self.lo)}


@numba.njit(cache=True, nogil=True)
def _accumulate(bins, off, Y, shift, width, edges, table, with_sums, binsum, classsum, count, total, total2,
                lo, hi):  # pragma: no cover - compiled
    n, M = Y.shape
    D = bins.shape[0]
    K = table.shape[2]
    n_edges = edges.shape[1]
    blk = 256  # scenarios per block: the block's values and classes stay in cache for every factor
    z = np.empty((M, blk))
    cls = np.empty((M, blk), np.int32)
    for j in range(D):
        for s in range(n):
            count[off[j] + bins[j, s]] += 1
    for s0 in range(0, n, blk):
        nb = min(blk, n - s0)
        for s in range(nb):
            for m in range(M):
                y = Y[s0 + s, m]
                if width > 0:
                    k = min(int(y) // width, K - 1)
                elif y != y:
                    k = K - 1
                else:  # number of edges <= y (binary search)
                    a, b = 0, n_edges
                    while a < b:
                        h = (a + b) // 2
                        if edges[m, h] <= y:
                            a = h + 1
                        else:
                            b = h
                    k = a
                v = y - shift[m]
                z[m, s] = v
                cls[m, s] = k
                classsum[m, k] += v
                total[m] += v
                total2[m] += v * v
                if v < lo[m]:
                    lo[m] = v
                if v > hi[m]:
                    hi[m] = v
        for m in range(M):
            tm, zm, cm = table[m], z[m], cls[m]
            for j in range(D):
                o = off[j]
                bj = bins[j, s0: s0 + nb]
                if with_sums:
                    bm = binsum[m]
                    for s in range(nb):
                        b = o + bj[s]
                        tm[b, cm[s]] += 1
                        bm[b] += zm[s]
                else:
                    for s in range(nb):
                        tm[bj[s] + o, cm[s]] += 1


@numba.njit(cache=True, nogil=True, parallel=True)
def _finish(table, binsum, count, off, classsum, total, total2, lo, hi, R, seed, out, n_threads,
            scratch):  # pragma: no cover - compiled
    """out[:, j, m] = S1, sd(S1*), delta_hat, mean(delta*), sd(delta*) for factor j and output m.

    Outputs are shared among ``n_threads`` threads; each (output, factor) draws from its own stream, so
    the result does not depend on the number of threads."""
    M = table.shape[0]
    for t in numba.prange(n_threads):
        _finish_outputs(table, binsum, count, off, classsum, total, total2, lo, hi, R, seed, out, t, n_threads,
                        scratch)
    for m in range(M):  # outputs whose sums are NaN (a NaN value) get NaN indices
        if total[m] != total[m]:
            out[:5, :, m] = np.nan


@numba.njit(cache=True, nogil=True)
def _finish_outputs(table, binsum, count, off, classsum, total, total2, lo, hi, R, seed, out, first, step,
                    scratch):  # pragma: no cover - compiled
    """:func:`_finish` for outputs first, first + step, ..."""
    M, B, K = table.shape
    D = len(off) - 1
    st = np.empty(4, U64)
    N = 0
    for b in range(off[0], off[1]):
        N += count[b]
    colc = np.zeros(K)
    rep = np.zeros(K)
    max_bins, max_cells = 0, 0
    for j in range(D):
        max_bins = max(max_bins, off[j + 1] - off[j])
    max_cells = max_bins * K
    start = np.empty(max_bins + 1, np.int64)  # each bin's drawn cells: start[i]..start[i+1]
    ek = np.empty(max_cells, np.int64)  # their classes
    repe = np.empty(max_cells)  # their classes' values
    cdf = np.empty(scratch)
    guide = np.empty(scratch, np.int64)
    draws = np.empty((R, max_cells), np.int32)
    rs1 = np.empty(R)
    rd = np.empty(R)
    nst = np.empty(max_bins)
    sst = np.empty(max_bins)
    cst = np.empty(K)
    pst = np.empty(K)
    for m in range(first, M, step):
        mean = total[m] / N
        var = total2[m] / N - mean * mean
        if not hi[m] > lo[m] or not var > 0:
            continue  # constant (or NaN) output: every index 0 (NaN when the sums are NaN)
        colc[:] = 0.0
        for b in range(off[0], off[1]):
            for k in range(K):
                colc[k] += table[m, b, k]
        var_rep = 0.0
        mean_rep = 0.0
        for k in range(K):
            rep[k] = classsum[m, k] / colc[k] if colc[k] > 0 else 0.0
            mean_rep += colc[k] / N * rep[k]
            var_rep += colc[k] / N * rep[k] * rep[k]
        within = max(var - (var_rep - mean_rep * mean_rep), 0.0)
        for j in range(D):
            b0, nb = off[j], off[j + 1] - off[j]
            s1 = 0.0
            d = 0.0
            ne = 0
            for i in range(nb):
                b = b0 + i
                start[i] = ne
                if count[b] > 0:
                    s1 += count[b] * (binsum[m, b] / count[b] - mean) ** 2
                for k in range(K):
                    t = table[m, b, k]
                    d += abs(t - count[b] * colc[k] / N)
                    if t > 0:
                        ek[ne] = k
                        repe[ne] = rep[k]
                        ne += 1
            start[nb] = ne
            out[0, j, m] = s1 / N / var
            out[2, j, m] = d / (2.0 * N)
            seed_stream(st, seed, U64(m * D + j))
            for i in range(nb):  # each drawn cell's Poisson(count) draws, from its CDF table
                for e in range(start[i], start[i + 1]):
                    c0, L = cdf_table(float(table[m, b0 + i, ek[e]]), cdf, guide)
                    for r in range(R):
                        draws[r, e] = draw(st, cdf, guide, c0, L)
            for r in range(R):
                dr = draws[r]
                cst[:] = 0.0
                for i in range(nb):
                    sn = 0.0
                    ss = 0.0
                    for e in range(start[i], start[i + 1]):
                        t = dr[e]
                        sn += t
                        ss += t * repe[e]
                        cst[ek[e]] += t
                    nst[i] = sn
                    sst[i] = ss
                n_r = 0.0
                ysum = 0.0
                y2 = 0.0
                for k in range(K):
                    n_r += cst[k]
                    ysum += cst[k] * rep[k]
                    y2 += cst[k] * rep[k] * rep[k]
                if n_r == 0:
                    rs1[r] = 0.0
                    rd[r] = 0.0
                    continue
                for k in range(K):
                    pst[k] = cst[k] / n_r
                ybar = ysum / n_r
                v_r = y2 / n_r - ybar * ybar + within
                dd = 0.0
                vb = 0.0
                for i in range(nb):  # |T* - n*_b P*_k| over the drawn cells; the others add n*_b P*_k
                    pin = 0.0
                    for e in range(start[i], start[i + 1]):
                        pk = pst[ek[e]]
                        dd += abs(dr[e] - nst[i] * pk)
                        pin += pk
                    dd += nst[i] * (1.0 - pin)
                    if nst[i] > 0:
                        vb += nst[i] * (sst[i] / nst[i] - ybar) ** 2
                rd[r] = dd / (2.0 * n_r)
                rs1[r] = vb / n_r / v_r if v_r > 0 else 0.0
            out[1, j, m] = np.std(rs1) * math.sqrt(R / (R - 1.0))
            out[3, j, m] = np.mean(rd)
            out[4, j, m] = np.std(rd) * math.sqrt(R / (R - 1.0))


def given_indices(bins: np.ndarray, Y: np.ndarray, n_bins: Sequence[int] | None = None, *, classes: Classes | None = None,
                  num_resamples: int = 100, conf_level: float = 0.95, seed: int = 0) -> dict[str, np.ndarray]:
    """Given-data S1 and delta of every column of ``Y`` (n, M) for factors binned as ``bins`` (factor, n).

    ``classes`` default: integer outputs are their own classes (ranks), float outputs
    :data:`SCORE_CLASSES` equal-probability classes of ``Y`` itself. Returns the arrays of
    :meth:`GivenSums.result` (factor, M)."""
    Y = np.asarray(Y)
    Y2 = Y.reshape(len(Y), -1)
    bins = np.atleast_2d(np.asarray(bins))
    n_bins = list(n_bins) if n_bins is not None else [int(b.max()) + 1 for b in bins]
    if classes is None:
        classes = Classes(int(Y2.max()) + 1, 1) if Y2.dtype.kind in "iub" else Classes.quantiles(Y2)
    shift = 0.0 if Y2.dtype.kind in "iub" else np.nanmean(Y2, axis=0)
    sums = GivenSums(n_bins, Y2.shape[1], classes, shift)
    sums.add(bins, Y2)
    return sums.result(num_resamples, conf_level, seed)


def warm_up() -> None:
    """Load the compiled accumulation kernels (rank, score and R-bar outputs), so forked workers start warm."""
    bins = np.zeros((1, 2), np.int32)
    for y in (np.ones((2, 1), np.int16), np.ones((2, 1), np.float32), np.ones((2, 1))):
        classes = Classes(2, 1) if y.dtype.kind == "i" else Classes.quantiles(y, 2)
        GivenSums([1], 1, classes).add(bins, y)
