"""Sobol' indices for many outputs at once: SALib 1.6's estimators, vectorised over outputs and resamples,
and accumulable chunk by chunk.

Rows follow ``SALib.sample.sobol.sample``: for each base sample, consecutive rows
A, AB_1..AB_D, [BA_1..BA_D when sampled with second order], B (D = number of groups when
groups are given). Estimators are those of ``SALib.analyze.sobol.analyze``: every output is first
normalised as ``(Y - Y.mean()) / Y.std()`` over all its rows, then S1 = mean(B*(AB-A))/var (Saltelli 2010),
ST = 0.5*mean((A-AB)**2)/var (Jansen), S2 as Saltelli 2002, var = var(r_[A, B]) with ddof 0; each index
is 0 when var <= float eps.

The normalisation is undone algebraically, so every estimator is a ratio of sums of raw terms over base
samples (outputs shifted by a constant known in advance, e.g. the nominal value). :class:`SobolSums` adds
those sums block by block: any set of whole Saltelli blocks, in any order, on any process, then
``merge`` and ``result``. Every bootstrap statistic is the same sum weighted by how often a resample drew
each base sample, so all outputs and resamples are matmuls: terms (outputs·T × base samples) @ counts
(base samples × R). For integer outputs (ranks) the sums are exact, so they do not depend on the order
or grouping of the blocks.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import cache

import numba
import numpy as np
import numpy.typing as npt

_EPS = np.finfo(float).eps
_CHUNK_TERMS = 4096  # outputs per chunk × terms per output: rows of one matmul
_BLOCK_BYTES = 32 * 2**20  # scratch for one block of base samples × one chunk of outputs
_EXACT32 = 2.0**24  # integers below this add exactly in float32
_FLOAT_MASS = 4096.0  # float outputs: float32 running sums cover at most this many resampled base samples
_INT32 = 2.0**31 - 1  # compact integer sums stay int32 while every bound is below this
_RESULT_BYTES = 16 * 2**20  # float64 scratch for finishing one chunk of outputs (bounds the peak memory of a shard)


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
    return _counts_t(n, num_resamples, seed).T.astype(np.int64)


_COUNTS: dict[tuple, np.ndarray] = {}


@cache
def _gemm(char: str) -> Callable:
    """BLAS gemm for float32 ("f") or float64 ("d"), imported on first use (scipy.linalg takes ~0.3 s to
    import: a process that never accumulates Sobol' sums, such as a Monte Carlo run's client, skips it)."""
    from scipy.linalg.blas import dgemm, sgemm

    return {"f": sgemm, "d": dgemm}[char]


_PER_OUTPUT = ("shift", "total", "total2", "lo", "hi", "part", "boot", "load", "bound")  # state arrays (M, ...)
_DRAW_ROWS = 4096  # indices are drawn this many rows at a time (the same stream as one draw)


def n_terms(D: int, second_order: bool) -> int:
    """Raw terms per output of the estimators (see :func:`_fill_terms`): 2 + 3D for S1 and ST, plus D + D(D-1)/2
    for S2."""
    return 2 + 3 * D + (D + D * (D - 1) // 2 if second_order else 0)


def _counts_t(n: int, R: int, seed: int | None) -> np.ndarray:
    """(n, R) resample counts as small unsigned integers (1 byte per base sample and resample), cached per
    process (the last few designs). Drawn in pieces, so no (n, R) index array is ever held."""
    key = (n, R, seed)
    if key not in _COUNTS:
        if len(_COUNTS) > 4:
            _COUNTS.clear()
        rng = np.random.default_rng(seed)
        counts = np.zeros((n, R), np.uint16)
        for i0 in range(0, n, _DRAW_ROWS):
            _tally_draws(rng.integers(n, size=(min(_DRAW_ROWS, n - i0), R)), counts)
        _COUNTS[key] = counts.astype(np.uint8) if counts.max(initial=0) < 256 else counts
    return _COUNTS[key]


@numba.njit(cache=True, nogil=True)
def _tally_draws(idx, counts):  # pragma: no cover - compiled
    rows, R = idx.shape
    for i in range(rows):
        for r in range(R):
            counts[idx[i, r], r] += 1


def _accumulate(counts: np.ndarray, terms: np.ndarray, out: np.ndarray, beta: float = 1.0) -> None:
    """out (K, R) = beta * out + terms (K, nb) @ counts (nb, R), in place (BLAS gemm: no temporary and no
    second pass over ``out``, which is large: every output x term x resample). beta = 0: out is not read."""
    gemm = _gemm(out.dtype.char)
    res = gemm(1.0, counts.T, terms.T, beta=beta, c=out.T, overwrite_c=1)  # F-order views: no copies
    if not np.shares_memory(res, out):  # pragma: no cover - a BLAS wrapper that copied
        out[...] = res.T


@numba.njit(cache=True, nogil=True)
def _add_into(target, values):  # pragma: no cover - compiled
    """target (K, R) += values (K, R) in one pass, converted to target's dtype (int32 sums of integer-valued
    float32 products, exact below 2^24: see SobolSums.add)."""
    for i in range(target.shape[0]):
        for j in range(target.shape[1]):
            target[i, j] += values[i, j]


_FASTMATH = {"reassoc", "contract"}  # lets sums vectorise; NaN/inf semantics kept


@numba.njit(cache=True, nogil=True)
def _moments(Y, shift):  # pragma: no cover - compiled
    """Sums of (Y - shift) and its square, and the min and max of Y - shift, of every column."""
    rows, M = Y.shape
    s, s2 = np.zeros(M), np.zeros(M)
    lo, hi = np.full(M, np.inf), np.full(M, -np.inf)
    for r in range(rows):
        for m in range(M):
            v = Y[r, m] - shift[m]
            s[m] += v
            s2[m] += v * v
            lo[m] = min(lo[m], v)
            hi[m] = max(hi[m], v)
    return s, s2, lo, hi


@numba.njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _fill_terms(Y, i0, lo, shift, D, step, second_order, z, buf, part):  # pragma: no cover - compiled
    """Raw terms of base samples i0..i0+nb of Y, outputs lo..lo+c, into buf (c, Tb, nb); adds their
    float64 sums to part (c, T). Terms past Tb (the second-order ones when their intervals are not
    bootstrapped) are only summed.

    z (c, step, nb) is float64 scratch for y - shift. Term order: A+B, A²+B², B*(AB_d-A) (D),
    (A-AB_d)² (D), AB_d-A (D), [BA_d-B (D), BA_j*AB_k - A*B for j < k].
    """
    c, Tb, nb = buf.shape
    for i8 in range((nb + 7) // 8):  # 8 x 8 tiles: whole cache lines in and out
        for rt in range(step):
            if not second_order and D < rt < step - 1:
                continue  # BA rows are unused
            for m0 in range(0, c, 8):
                for m in range(m0, min(c, m0 + 8)):
                    for i in range(8 * i8, min(nb, 8 * i8 + 8)):
                        z[m, rt, i] = Y[(i0 + i) * step + rt, lo + m] - shift[m]
    for m in range(c):
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
            s0 = s1 = s2 = 0.0
            for i in range(nb):
                u = ab[i] - a[i]
                v = b[i] * u
                o[2 + d, i] = v
                s0 += v
                w = u * u
                o[2 + D + d, i] = w
                s1 += w
                o[2 + 2 * D + d, i] = u
                s2 += u
            acc[2 + d] += s0
            acc[2 + D + d] += s1
            acc[2 + 2 * D + d] += s2
        if second_order:
            keep = Tb > 2 + 3 * D  # the terms go to the bootstrap too
            for d in range(D):
                ba = zm[1 + D + d]
                s0 = 0.0
                if keep:
                    for i in range(nb):
                        v = ba[i] - b[i]
                        o[2 + 3 * D + d, i] = v
                        s0 += v
                else:
                    for i in range(nb):
                        s0 += ba[i] - b[i]
                acc[2 + 3 * D + d] += s0
            t = 2 + 4 * D
            for j in range(D - 1):
                ba = zm[1 + D + j]
                for k in range(j + 1, D):
                    ab = zm[1 + k]
                    s0 = 0.0
                    if keep:
                        for i in range(nb):
                            v = ba[i] * ab[i] - a[i] * b[i]
                            o[t, i] = v
                            s0 += v
                    else:
                        for i in range(nb):
                            s0 += ba[i] * ab[i] - a[i] * b[i]
                    acc[t] += s0
                    t += 1


class SobolSums:
    """Mergeable sums for the Sobol' indices of ``M`` outputs over whole Saltelli blocks.

    ``n`` base samples, ``D`` factors (or groups), ``shift`` (M,) a constant per output subtracted before
    any sum (the nominal value keeps float sums well conditioned), ``integer`` says the outputs are integers
    (their sums are then exact). Add blocks with :meth:`add`, combine with :meth:`merge`, finish with
    :meth:`result` once every block is in. ``second_order_conf`` False: S2 point estimates only, its bootstrap
    (the D(D-1)/2 + D cross terms, most of the matmul at large D) skipped; S2_conf is then NaN.
    """

    def __init__(self, M: int, D: int, n: int, *, second_order: bool = False, design_second_order: bool | None = None,
                 num_resamples: int = 100, seed: int | None = 0, shift: npt.ArrayLike = 0.0, integer: bool = False,
                 dtype: npt.DTypeLike = np.float32, chunk_outputs: int | None = None, compact: bool = False,
                 second_order_conf: bool = True) -> None:
        design_so = second_order if design_second_order is None else design_second_order
        if second_order and not design_so:
            raise ValueError("second-order indices need a design sampled with second order")
        if D < 1 or num_resamples < 2:
            raise ValueError("need D >= 1 and num_resamples >= 2")
        self.M, self.D, self.n, self.R, self.seed = M, D, n, num_resamples, seed
        self.second_order, self.step = second_order, 2 * D + 2 if design_so else D + 2
        self.integer, self.dtype, self.chunk_outputs = integer, np.dtype(dtype), chunk_outputs
        self.shift = np.broadcast_to(np.asarray(shift, np.float64), (M,)).copy()
        self.T = n_terms(D, second_order)  # terms summed
        self.Tb = n_terms(D, second_order and second_order_conf)  # terms bootstrapped (the first Tb)
        self.rows = 0
        self.total, self.total2 = np.zeros(M), np.zeros(M)
        self.lo, self.hi = np.full(M, np.inf), np.full(M, -np.inf)
        self.part = np.zeros((M, self.T))
        self.boot: np.ndarray | None = None  # (M, Tb, R) float64 bootstrap sums
        # The matmuls accumulate in place into ``acc`` (M, Tb, R) in ``dtype``, which is added into ``boot``
        # before it could lose exactness (integers) or precision (floats). ``load`` (M,) bounds what ``acc``
        # holds, ``bound`` what ``boot`` holds (integers: a bound of every |sum|; floats: resampled rows).
        self.acc: np.ndarray | None = None
        self.load = np.zeros(M)
        self.bound = np.zeros(M)
        # ``compact``: no float64 sums and no separate accumulator, for many outputs (half the memory or
        # less): ``boot`` holds int32 sums of integer outputs (exact; widened to float64 should a bound
        # reach 2^31) and float32 sums of float outputs (they only feed the confidence intervals).
        self.compact = compact

    def __getstate__(self) -> dict:
        """Compact for transfer between processes, in one pass: the bootstrap sums as int32 (integer outputs
        whose bound fits: exact) or float32 (the others: they only feed the confidence intervals); the
        receiver adds them into float64."""
        state = dict(self.__dict__, acc=None, load=np.zeros(self.M), bound=self.bound + self.load)
        acc = self.acc if self.acc is not None and self.load.any() else None
        if self.boot is None:  # never flushed: the running sums are all there is (exact for integers)
            state["boot"] = acc
            return state
        fits = self.integer and float(state["bound"].max()) < 2.0**31
        dtype = np.int32 if fits else np.float64 if self.integer else np.float32
        state["boot"] = self.boot.astype(dtype, copy=False) if acc is None else \
            np.add(self.boot, acc, out=np.empty(self.boot.shape, dtype), casting="unsafe")
        return state

    def export(self) -> dict:
        """The compact state (see ``__getstate__``) as plain arrays and numbers: Dask sends these without
        pickling (measured here 2-4x faster than a pickled object of the same size)."""
        return dict(self.__getstate__(), dtype=self.dtype.str)

    @staticmethod
    def slice_export(state: dict, part: int, parts: int) -> dict:
        """Outputs ``part`` of ``parts`` (contiguous, near-equal shares) of an exported state: the sums of
        disjoint output slices merge and finish independently (the reduce-scatter of a sweep)."""
        M = int(state["M"])
        lo, hi = (M * part) // parts, (M * (part + 1)) // parts
        out = {k: (v[lo:hi] if k in _PER_OUTPUT and v is not None else v) for k, v in state.items()}
        out["M"] = hi - lo
        return out

    @classmethod
    def from_export(cls, state: dict) -> SobolSums:
        obj = cls.__new__(cls)
        small = {k: np.array(v) for k, v in state.items() if isinstance(v, np.ndarray) and k != "boot"}
        obj.__dict__.update(state, **small, dtype=np.dtype(state["dtype"]))  # received buffers may be read-only
        return obj

    def _boot64(self) -> np.ndarray:
        """The float64 bootstrap sums (allocated, or widened from a compact copy received from another process)."""
        if self.boot is None:
            self.boot = np.zeros((self.M, self.Tb, self.R))
        elif self.boot.dtype != np.float64 or not self.boot.flags.writeable:
            self.boot = self.boot.astype(np.float64)
        return self.boot

    def _boot_compact(self, sl: slice = slice(None), need: np.ndarray | float = 0.0) -> np.ndarray:
        """The compact bootstrap sums (allocated), widened to float64 before an int32 sum of outputs ``sl``
        could overflow by ``need`` more."""
        if self.boot is None:
            self.boot = np.zeros((self.M, self.Tb, self.R), np.int32 if self.integer else self.dtype)
        elif not self.boot.flags.writeable:
            self.boot = self.boot.copy()
        if self.boot.dtype == np.int32 and float(np.max(self.bound[sl] + need, initial=0.0)) >= _INT32:
            self.boot = self.boot.astype(np.float64)
        return self.boot

    def _add_boot(self, target: np.ndarray, counts: np.ndarray, terms: np.ndarray, scratch: np.ndarray) -> None:
        """target (K, R) += terms (K, nb) @ counts (nb, R): in place when the dtypes agree, else through
        ``scratch`` (K, R) in the terms' dtype (exact for integers in range)."""
        if target.dtype == terms.dtype:
            _accumulate(counts, terms, target)
            return
        _accumulate(counts, terms, scratch, beta=0.0)
        _add_into(target, scratch)

    def flush(self, sl: slice = slice(None)) -> None:
        """Add the in-place accumulator of outputs ``sl`` into the float64 bootstrap sums."""
        if self.acc is None or not self.load[sl].any():
            return
        self._boot64()[sl] += self.acc[sl]
        self.acc[sl] = 0
        self.bound[sl] += self.load[sl]
        self.load[sl] = 0

    def add(self, Y: np.ndarray, first: int | npt.ArrayLike) -> None:
        """Add whole blocks: ``Y`` (blocks*step, M) are the rows of base samples ``first``, ``first`` + 1, ...
        or, with ``first`` an array of one index per block, of those base samples (each added once overall).

        Every call passes once over all the bootstrap sums (M x terms x resamples), whatever the number of
        blocks: callers with few blocks at a time and many outputs gather several calls' blocks into one."""
        Y = np.asarray(Y).reshape(len(Y), -1)
        if len(Y) % self.step or Y.shape[1] != self.M:
            raise ValueError(f"Y has shape {Y.shape}: need whole blocks of {self.step} rows and {self.M} outputs")
        nb_all = len(Y) // self.step
        base = np.arange(first, first + nb_all) if np.ndim(first) == 0 else np.asarray(first, np.int64)
        if len(base) != nb_all:
            raise ValueError(f"{len(base)} base sample indices for {nb_all} blocks")
        if nb_all and (base.min() < 0 or base.max() >= self.n):
            raise ValueError(f"base samples {base.min()}..{base.max() + 1} are outside 0..{self.n}")
        s, s2, lo, hi = _moments(Y, self.shift)
        self.total += s
        self.total2 += s2
        self.lo, self.hi = np.minimum(self.lo, lo), np.maximum(self.hi, hi)
        self.rows += len(Y)
        D, T, step, M, R = self.D, self.Tb, self.step, self.M, self.R
        chunk = min(M, self.chunk_outputs or max(2, _CHUNK_TERMS // T))
        block = min(nb_all, max(256, _BLOCK_BYTES // (chunk * (8 * step + T * self.dtype.itemsize))))
        big = np.maximum(np.abs(lo), np.abs(hi))
        zbuf = np.empty(chunk * step * block)
        tbufs: dict[np.dtype, np.ndarray] = {}  # scratch for the terms, per dtype
        sbufs: dict[np.dtype, np.ndarray] = {}  # compact: scratch for one chunk's bootstrap sums
        if self.acc is None and not self.compact:
            self.acc = np.zeros((M, T, R), self.dtype)
        for i0 in range(0, nb_all, block):
            nb = min(block, nb_all - i0)
            block_counts = _counts_t(self.n, R, self.seed)[base[i0:i0 + nb]]
            colmax = float(block_counts.sum(axis=0, dtype=np.int64).max())
            as_dtype = {}  # the block's counts in each matmul dtype
            # what this block adds to each output's bound: integers stay exact in float32 below 2^24;
            # floats are flushed every _FLOAT_MASS resampled base samples
            need = 4 * big * big * colmax if self.integer else np.full(M, colmax)
            limit = _EXACT32 if self.integer else _FLOAT_MASS
            for c0 in range(0, M, chunk):
                c = min(chunk, M - c0)
                sl = slice(c0, c0 + c)
                direct = self.integer and float(need[sl].max()) >= limit  # too big for float32: float64 sums
                if not direct and not self.compact and float((self.load[sl] + need[sl]).max()) >= limit:
                    self.flush(sl)
                dtype = np.dtype(np.float64) if direct else self.dtype
                target = self._boot_compact(sl, need[sl]) if self.compact else self._boot64() if direct else self.acc
                if dtype not in as_dtype:
                    as_dtype[dtype] = np.ascontiguousarray(block_counts, dtype=dtype)
                counts = as_dtype[dtype]
                zb = zbuf[: c * step * nb].reshape(c, step, nb)
                if dtype not in tbufs:
                    tbufs[dtype] = np.empty(chunk * T * block, dtype)
                tb = tbufs[dtype][: c * T * nb].reshape(c * T, nb)
                _fill_terms(Y, i0, c0, self.shift[sl], D, step, self.second_order, zb, tb.reshape(c, T, nb),
                            self.part[sl])
                if self.compact:
                    if dtype not in sbufs:
                        sbufs[dtype] = np.empty(chunk * T * R, dtype)
                    self._add_boot(target[sl].reshape(c * T, R), counts, tb, sbufs[dtype][: c * T * R].reshape(c * T, R))
                else:
                    _accumulate(counts, tb, target[sl].reshape(c * T, R))
                (self.bound if direct or self.compact else self.load)[sl] += need[sl]

    def merge(self, other: SobolSums) -> SobolSums:
        """Add another instance's sums (same outputs, design and resamples) into this one."""
        if (other.M, other.D, other.n, other.R, other.seed, other.T, other.Tb) != (
                self.M, self.D, self.n, self.R, self.seed, self.T, self.Tb) or not np.array_equal(
                other.shift, self.shift):
            raise ValueError("cannot merge Sobol sums of different outputs, designs or resamples")
        self.flush()
        other.flush()
        self.bound += other.bound
        self.rows += other.rows
        self.total += other.total
        self.total2 += other.total2
        self.lo, self.hi = np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi)
        self.part += other.part
        if other.boot is not None and getattr(self, "compact", False):
            np.add(self._boot_compact(), other.boot, out=self.boot, casting="unsafe")
        elif other.boot is not None:
            self._boot64()[...] += other.boot
        return self

    def _estimates(self, sums: np.ndarray, mu: np.ndarray, var_all: np.ndarray,
                   ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """S1, ST (M, D, K) and S2 (M, P, K) from term sums (M, T, K); 0 where not ``ok`` or var <= eps; S2 has
        no columns (P = 0) when ``sums`` lacks the second-order terms."""
        n, D = self.n, self.D
        mean = sums[:, 0] / (2 * n)
        var = sums[:, 1] / (2 * n) - mean * mean  # var(r_[A, B]) of the raw outputs
        good = (var > _EPS * var_all[:, None]) & ok[:, None]  # SALib: var of the normalised outputs > eps
        inv = np.divide(1.0 / n, var, out=np.zeros_like(var), where=good)[:, None]
        m = mu[:, None, None]
        u = sums[:, 2 + 2 * D : 2 + 3 * D]
        s1 = (sums[:, 2 : 2 + D] - m * u) * inv
        st = 0.5 * sums[:, 2 + D : 2 + 2 * D] * inv
        if not self.second_order or sums.shape[1] < self.T:
            return s1, st, np.zeros((len(sums), 0, sums.shape[2]))
        j, k = np.triu_indices(D, 1)
        w = sums[:, 2 + 3 * D : 2 + 4 * D]
        s2 = (sums[:, 2 + 4 * D :] - m * (w[:, j] + u[:, k])) * inv - s1[:, j] - s1[:, k]
        return s1, st, s2

    def result(self, conf_level: float = 0.95, keep_resamples: bool = False) -> dict[str, np.ndarray]:
        """Indices and bootstrap confidences (see :func:`sobol_indices`) once every block has been added."""
        if self.rows != self.n * self.step:
            raise ValueError(f"Sobol sums hold {self.rows} rows of {self.n * self.step}: some blocks are missing")
        if not 0 < conf_level < 1:
            raise ValueError("need 0 < conf_level < 1")
        self.flush()
        D, M = self.D, self.M
        mu = self.total / self.rows  # the global mean of y - shift
        var_all = np.maximum(self.total2 / self.rows - mu * mu, 0.0)
        varying = self.hi > self.lo
        mean = self.part[:, 0] / (2 * self.n)
        ok = varying & (self.part[:, 1] / (2 * self.n) - mean * mean > _EPS * var_all)
        s1, st, s2 = (e[..., 0] for e in self._estimates(self.part[:, :, None], mu, var_all, ok))
        q = statistics.NormalDist().inv_cdf(0.5 + conf_level / 2)
        out = {"S1": s1.T.copy(), "ST": st.T.copy(), "S1_conf": np.empty((D, M)), "ST_conf": np.empty((D, M)),
               "constant": ~ok}
        P = D * (D - 1) // 2 if self.second_order else 0
        s2_conf = np.empty((P, M))
        if keep_resamples:
            out["S1_conf_all"], out["ST_conf_all"] = np.empty((self.R, D, M)), np.empty((self.R, D, M))
        boot = self._boot64() if self.boot is None else self.boot
        step = max(1, _RESULT_BYTES // (8 * self.Tb * self.R))  # outputs per chunk: float64 scratch bounded
        for m0 in range(0, M, step):
            sl = slice(m0, min(M, m0 + step))
            b1, bt, b2 = self._estimates(boot[sl].astype(np.float64, copy=False), mu[sl], var_all[sl], ok[sl])
            out["S1_conf"][:, sl] = q * b1.std(axis=-1, ddof=1).T
            out["ST_conf"][:, sl] = q * bt.std(axis=-1, ddof=1).T
            s2_conf[:, sl] = q * b2.std(axis=-1, ddof=1).T if b2.shape[1] else np.nan
            if keep_resamples:
                out["S1_conf_all"][:, :, sl], out["ST_conf_all"][:, :, sl] = b1.transpose(2, 1, 0), bt.transpose(2, 1, 0)
        if self.second_order:
            j, k = np.triu_indices(D, 1)
            out["S2"], out["S2_conf"] = np.full((D, D, M), np.nan), np.full((D, D, M), np.nan)
            out["S2"][j, k] = s2.T
            out["S2_conf"][j, k] = s2_conf
        return out


def sobol_indices(Y: np.ndarray, D: int, *, second_order: bool = False, num_resamples: int = 100,
                  conf_level: float = 0.95, seed: int | None = 0, keep_resamples: bool = False,
                  chunk_outputs: int | None = None, design_second_order: bool | None = None,
                  dtype: npt.DTypeLike = np.float32, second_order_conf: bool = True) -> dict[str, np.ndarray]:
    """Sobol' indices and bootstrap confidences for every column of ``Y``.

    Y: (N*(2D+2) or N*(D+2), M) outputs in SALib row order, any real dtype (a 1-D Y is one output).
    Returns S1, ST, S1_conf, ST_conf (D, M); S2, S2_conf (D, D, M) when ``second_order``
    (upper triangle, NaN on and below the diagonal as SALib); 'constant' (M,) bool: outputs whose
    A and B rows have zero variance, for which every index and conf is 0 (SALib gives 0 too, with warnings);
    with ``keep_resamples`` also S1_conf_all, ST_conf_all (R, D, M).
    ``design_second_order`` (default ``second_order``) says how Y was sampled: S1/ST alone can be
    computed from a second-order design. Point estimates are float64 (SALib's to ~1e-13); the
    bootstrap sums of non-integer outputs use ``dtype`` (float32: faster, confs within ~1e-5 relative of
    float64); integer outputs are summed exactly. With a non-zero seed the resamples are SALib's
    ``analyze(..., seed=seed)`` draws. The kernels are single-threaded (parallelism comes from the
    sweep's tasks); the matmuls use the BLAS threads. ``second_order_conf`` False skips the bootstrap of S2
    (S2_conf NaN), which at large D is most of the work.
    """
    Y = np.asarray(Y)
    Y = Y.reshape(len(Y), -1)
    design_so = second_order if design_second_order is None else design_second_order
    step = 2 * D + 2 if design_so else D + 2
    if D < 1 or len(Y) % step or not len(Y):
        raise ValueError(f"Y has {len(Y)} rows: not a multiple of {step} = {'2D+2' if design_so else 'D+2'} "
                         f"for D = {D}; check D and whether the design was sampled with second order")
    integer = Y.dtype.kind in "iub"
    shift = np.zeros(Y.shape[1]) if integer else Y[: min(len(Y), 4096)].mean(axis=0)
    sums = SobolSums(Y.shape[1], D, len(Y) // step, second_order=second_order, design_second_order=design_so,
                     num_resamples=num_resamples, seed=seed, shift=shift, integer=integer, dtype=dtype,
                     chunk_outputs=chunk_outputs, second_order_conf=second_order_conf)
    sums.add(Y, 0)
    return sums.result(conf_level, keep_resamples)
