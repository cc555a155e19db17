"""The mergeable summary of a sweep: everything the analysis needs, accumulated chunk by chunk.

Each sweep task adds its chunk's scores and ranks to the summary held by its worker process, so the
analysis needs no second pass over the store. A summary holds, over the chunks it has seen:

* the rank histogram count(city, field, rank) (:class:`~engine.stats.rankhist.RankHistogram`: exact, over
  the band of ranks each city takes) and, for the top cities, how often a ranks above b;
* the exact distributions, per field, of R-bar, Spearman and Kendall over the stability rows (Monte
  Carlo: every row; Sobol: the A and B rows), as distinct values with counts: these statistics take few
  distinct values (R-bar is a multiple of 1/cities, the correlations are functions of integer sums), so
  their size is bounded by the data, not by the number of scenarios, and percentiles stay exact;
* for Sobol designs, :class:`engine.stats.sobol.SobolSums` of every rank, every score and R-bar;
* for SMAA-2's central weights, per (city, field) that ever ranks first over the stability rows, the sum of
  the scenarios' weight vectors (renormalised node weights, in [0, 1]) where it does (a sparse, sorted cell
  list), in exact integer fixed point: each weight rounded to a multiple of 2^-52 and split into two int64
  words of 26 bits, so the sums do not depend on the order of chunks and workers either;
* for Monte Carlo designs whose plan has a ``given`` configuration, :class:`engine.stats.given_run.GivenData`
  (first-order indices and Borgonovo's delta from given data).

Summaries of disjoint chunk sets merge by addition. Rank-based sums are integers, summed exactly, so
they do not depend on which worker saw which chunk; score sums are float64 (last-bit differences only).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import numba
import numpy as np
import xarray as xr

from ..design import stability_rows
from .given_run import GivenConfig, GivenData
from .rankcorr import rank_correlations
from .rankhist import RankHistogram, dense_fits
from .sobol import SobolSums, n_terms

TOP_PAIRS = 10  # pairwise probabilities for this many top cities (by nominal overall rank)
TARGETS = ("rank", "score")

STATS = ("rbar", "spearman", "kendall")


def tally(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (sorted) and their counts."""
    v, c = np.unique(values, return_counts=True)
    return v, c.astype(np.int64)


def combine(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The tally of two tallies' values together."""
    v = np.concatenate([a[0], b[0]])
    c = np.concatenate([a[1], b[1]])
    order = np.argsort(v, kind="stable")
    v, c = v[order], c[order]
    first = np.flatnonzero(np.r_[True, v[1:] != v[:-1]]) if len(v) else np.zeros(0, np.int64)
    return v[first], np.add.reduceat(c, first) if len(v) else c


def tally_quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """Type-7 quantile (``np.percentile(expanded, 100 q)``) of a tally."""
    n = int(counts.sum())
    if not n:
        return float("nan")
    cum = np.cumsum(counts)
    h = (n - 1) * q
    lo = int(np.floor(h))
    v_lo = values[np.searchsorted(cum, lo, side="right")]
    v_hi = values[np.searchsorted(cum, min(lo + 1, n - 1), side="right")]
    return float(v_lo + (h - lo) * (v_hi - v_lo))


def tally_mean(values: np.ndarray, counts: np.ndarray) -> float:
    n = int(counts.sum())
    return float((values * counts).sum() / n) if n else float("nan")


@dataclass(frozen=True)
class Plan:
    """What summarising needs to know about a run: nominal results and the design."""

    nominal_rank: np.ndarray  # (city, field) int
    nominal_score: np.ndarray  # (city, field) float32
    kind: str
    n_scenarios: int
    chunk: int
    block_size: int
    n_base: int
    n_groups: int
    second_order: bool
    num_resamples: int
    seed: int
    n_nodes: int = 0  # weights per scenario; 0: no central-weight sums
    layout: str = ""  # the store's rank_count_layout ("dense" or "band"; "" = by size)
    second_order_conf: bool = True  # bootstrap S2 too (stores written before the setting existed did)
    targets: tuple[str, ...] = TARGETS  # the cell outputs with Sobol' sums (the spec's [design] sobol_targets)

    given: GivenConfig | None = None  # Monte Carlo: how the given-data sums bin and class (see stats.given)

    @classmethod
    def from_store(cls, store: xr.Dataset, num_resamples: int | None = None, seed: int = 0) -> Plan:
        a = store.attrs
        return cls(store["nominal_rank"].values.astype(np.int64), store["nominal_score"].values.astype(np.float32),
                   a["design_kind"], int(a["n_scenarios"]), int(a["chunk"]), int(a["block_size"]), int(a["design_n"]),
                   len(json.loads(a["factor_groups"])), bool(a["second_order"]),
                   int(num_resamples or a.get("num_resamples", 100)), seed + 1, int(store.sizes.get("node", 0)),
                   a.get("rank_count_layout", "dense"), bool(a.get("second_order_conf", 1)),
                   tuple(str(a.get("sobol_targets", ",".join(TARGETS))).split(",")))

    @property
    def sobol(self) -> bool:
        return self.kind == "sobol"

    @property
    def dense(self) -> bool:
        """Whether the store keeps dense rank histograms (per chunk and in total): small indices only."""
        return self.layout == "dense" if self.layout else dense_fits(*self.nominal_rank.shape)

    @property
    def top(self) -> np.ndarray:
        """The top cities by nominal overall rank (ties by city order)."""
        return np.argsort(self.nominal_rank[:, -1], kind="stable")[:TOP_PAIRS]

    def bounds(self, k: int) -> tuple[int, int]:
        return k * self.chunk, min((k + 1) * self.chunk, self.n_scenarios)


def rank_histogram(ranks: np.ndarray) -> np.ndarray:
    """Counts (city, field, rank 1..C) of int ranks (scenario, city, field); rank 0 (no score) is dropped."""
    _, n_c, n_f = ranks.shape
    cell = (np.arange(n_c)[:, None] * n_f + np.arange(n_f)[None, :]) * (n_c + 1)
    idx = (cell[None] + ranks.astype(np.int64)).ravel()
    counts = np.bincount(idx, minlength=n_c * n_f * (n_c + 1)).reshape(n_c, n_f, n_c + 1)
    return counts[:, :, 1:].astype(np.int32)


def rank_deviation(ranks: np.ndarray, nominal_rank: np.ndarray) -> np.ndarray:
    """Sum over cities of |rank - nominal rank|, (scenario, field) int64: R-bar times the number of cities."""
    return _deviation(np.ascontiguousarray(ranks), np.ascontiguousarray(nominal_rank, dtype=np.int64))


@numba.njit(cache=True, nogil=True)
def _deviation(ranks, nominal):  # pragma: no cover - compiled
    n_s, n_c, n_f = ranks.shape
    out = np.zeros((n_s, n_f), np.int64)
    for s in range(n_s):
        for c in range(n_c):
            for f in range(n_f):
                out[s, f] += abs(np.int64(ranks[s, c, f]) - nominal[c, f])
    return out


def correlations(ranks: np.ndarray, nominal_rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman and Kendall (tau-b) correlation of each scenario's ranking with the nominal one, per field:
    two (scenario, field) arrays, equal to scipy's (Spearman on average ranks, so ties as scipy treats
    them); 1 when either ranking is constant. O(cities log cities) per scenario (see engine.stats.rankcorr)."""
    return rank_correlations(ranks, nominal_rank, constant=1.0)


FIXED_BITS = 52  # weights in [0, 1] as integer multiples of 2^-52, in two words of 26 bits


def fixed_point(weights: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] (scenario, node) as exact integer words (scenario, 2, node): high and low 26 bits of
    round(w 2^52). Sums of up to 2^37 rows cannot overflow, and integer sums do not depend on their order."""
    q = np.rint(np.asarray(weights, dtype=np.float64) * 2.0 ** FIXED_BITS).astype(np.int64)
    half = FIXED_BITS // 2
    return np.stack([q >> half, q & ((1 << half) - 1)], axis=1)


def from_fixed_point(words: np.ndarray) -> np.ndarray:
    """Sums of :func:`fixed_point` words (..., 2, node) as floats."""
    half = FIXED_BITS // 2
    return words[..., 0, :] * 2.0 ** -half + words[..., 1, :] * 2.0 ** -FIXED_BITS


def first_weight_sums(ranks: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every (city, field) cell ranked first in some scenario (ties included): its index
    ``city * fields + field`` (sorted) and the exact sum of those scenarios' weight rows (cells, 2, node),
    see :func:`fixed_point`."""
    weights = np.asarray(weights)
    n_cells = ranks.shape[1] * ranks.shape[2]
    s, cell = _firsts(np.ascontiguousarray(ranks).reshape(len(ranks), n_cells))  # integer sums: any order
    if not len(s):
        return np.zeros(0, np.int64), np.zeros((0, 2, weights.shape[1]), np.int64)
    return merge_cells(cell, fixed_point(weights[s]))


@numba.njit(cache=True, nogil=True)
def _firsts(r2):  # pragma: no cover - compiled
    """Rows and cells (row, cell) where r2 == 1, in one pass."""
    n_s, n = r2.shape
    k = 0
    for s in range(n_s):
        for c in range(n):
            k += r2[s, c] == 1
    rows, cells = np.empty(k, np.int64), np.empty(k, np.int64)
    k = 0
    for s in range(n_s):
        for c in range(n):
            if r2[s, c] == 1:
                rows[k], cells[k] = s, c
                k += 1
    return rows, cells


def merge_cells(cells: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct cells and the sums of their rows."""
    if not len(cells):
        return cells, sums
    order = np.argsort(cells, kind="stable")
    cells, sums = cells[order], sums[order]
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    return cells[starts], np.add.reduceat(sums, starts, axis=0)


def sobol_kw(plan: Plan) -> dict:
    return dict(D=plan.n_groups, n=plan.n_base, second_order=plan.second_order, num_resamples=plan.num_resamples,
                seed=plan.seed, second_order_conf=plan.second_order_conf)


def sobol_sums(plan: Plan, lo: int, hi: int, compact: bool = False) -> dict[str, SobolSums]:
    """Sobol' sums of the plan's target outputs (ranks, scores) [lo, hi) (cells city * fields + field)."""
    kw = dict(sobol_kw(plan), compact=compact)
    make = {"rank": lambda: SobolSums(hi - lo, shift=plan.nominal_rank.ravel()[lo:hi], integer=True, **kw),
            "score": lambda: SobolSums(hi - lo, shift=plan.nominal_score.ravel()[lo:hi], **kw)}
    return {t: make[t]() for t in plan.targets}


def output_slice(n_outputs: int, part: int, parts: int) -> tuple[int, int]:
    """Outputs of share ``part`` of ``parts`` (contiguous, near-equal; as ``SobolSums.slice_export``)."""
    return (n_outputs * part) // parts, (n_outputs * (part + 1)) // parts


SHARD_BYTES = 2**28  # shard the rank and score Sobol' sums over the workers above this size (float64)
SHARD_BUFFER = 2**26  # bytes of chunk outputs a shard gathers before adding them to its sums


def sums_bytes(plan: Plan) -> int:
    """Bytes of the float64 bootstrap sums of every target output (what sharding divides)."""
    T = n_terms(plan.n_groups, plan.second_order and plan.second_order_conf)
    return len(plan.targets) * plan.nominal_rank.size * T * plan.num_resamples * 8


class SobolShard:
    """One worker's share of a sharded sweep's Sobol' sums: the target outputs (ranks, scores) [lo, hi) of
    every chunk, whichever worker computed it (compact sums: see ``SobolSums``). Chunks count once.

    A chunk of a large index holds few Saltelli blocks (2 at 2000 cities x 21 fields), and each
    ``SobolSums.add`` passes over all the shard's bootstrap sums (700 MB there): so the chunks' rows are
    gathered in a buffer of about :data:`SHARD_BUFFER` bytes and added together (:meth:`flush`)."""

    def __init__(self, plan: Plan, part: int, parts: int) -> None:
        self.plan, self.part, self.parts = plan, part, parts
        self.lo, self.hi = output_slice(plan.nominal_rank.size, part, parts)
        self.sums = sobol_sums(plan, self.lo, self.hi, compact=True)
        self.chunks: set[int] = set()
        self.lock = threading.Lock()  # tasks of one worker may run in several threads
        self._rows = 0  # rows held in the buffers (the chunks' dtypes: int16 ranks, float32 scores)
        self._base: list[np.ndarray] = []  # their base samples
        self._buffers: dict[str, np.ndarray] = {}  # target -> (rows, hi - lo)

    def add(self, k: int, first: int, ranks: np.ndarray, scores: np.ndarray | None) -> None:
        """Add chunk ``k``'s rank and score outputs of this share (rows, hi - lo), from base sample ``first``
        (``scores`` may be None when they are no target)."""
        if k in self.chunks:
            return
        given = {"rank": ranks, "score": scores}
        outputs = {t: given[t] for t in self.sums}
        n, width = len(ranks), self.hi - self.lo
        held = len(next(iter(self._buffers.values()))) if self._buffers else 0
        if held and self._rows + n > held:
            self.flush()
        if n > held:
            cap = max(n, SHARD_BUFFER // max(1, width * sum(o.itemsize for o in outputs.values())))
            self._buffers = {t: np.empty((cap, width), o.dtype) for t, o in outputs.items()}
        for t, o in outputs.items():
            self._buffers[t][self._rows:self._rows + n] = o.reshape(n, width)
        self._rows += n
        self._base.append(np.arange(first, first + n // next(iter(self.sums.values())).step))
        self.chunks.add(k)

    def flush(self) -> None:
        """Add the buffered chunks to the sums."""
        if self._rows:
            base = np.concatenate(self._base)
            for t, buffer in self._buffers.items():
                self.sums[t].add(buffer[:self._rows], base)
        self._rows, self._base = 0, []

    def result(self, conf_level: float) -> dict[str, dict]:
        self.flush()
        self._buffers = {}
        return {name: s.result(conf_level) for name, s in self.sums.items()}


class Summary:
    """The analysis state of a set of chunks; see the module docstring."""

    def __init__(self, plan: Plan, sobol: bool = True, sharded: bool = False) -> None:
        """``sobol``: hold Sobol' sums (Sobol designs); ``sharded``: only those of R-bar, the rank and score
        outputs being summed by :class:`SobolShard` s (a sweep whose sums are too big for one process)."""
        self.plan = plan
        n_c, n_f = plan.nominal_rank.shape
        k = len(plan.top)
        self.chunks: set[int] = set()
        self.hist = RankHistogram.empty(n_c, n_f)
        self.above = np.zeros((n_f, k, k), np.int64)  # how often top city a ranks strictly above b
        self.n_stability = 0  # stability rows seen
        empty = (np.zeros(0), np.zeros(0, np.int64))
        self.dist = {name: [empty] * n_f for name in STATS}  # statistic -> per field (values, counts)
        self.first_cells = np.zeros(0, np.int64)  # (city, field) cells ranked first somewhere: c * n_f + f
        self.first_wsum = np.zeros((0, 2, plan.n_nodes), np.int64)  # their exact weight sums (fixed point)
        self.sums: dict[str, SobolSums] = {}
        self.results: dict[str, dict] = {}  # Sobol results already finished elsewhere (see engine.sweep)
        self.results_conf: float | None = None
        if plan.sobol and sobol:
            self.sums = {"rbar": SobolSums(n_f, integer=True, **sobol_kw(plan))}
            if not sharded:  # too big to shard here (one process): compact sums, half the memory
                self.sums = {**sobol_sums(plan, 0, n_c * n_f, compact=sums_bytes(plan) > SHARD_BYTES), **self.sums}
        self.given = GivenData(plan.given) if plan.given is not None and not plan.sobol and sobol else None

    def add(self, k: int, scores: np.ndarray, ranks: np.ndarray, deviation: np.ndarray | None = None,
            weights: np.ndarray | None = None, design: np.ndarray | None = None) -> np.ndarray | None:
        """Add chunk ``k`` (its scores and ranks (scenario, city, field); its weights (scenario, node) for
        the central weights; its design rows (scenario, factor) for the given-data sums); return its dense
        rank histogram (city, field, rank) when the store keeps those (``Plan.dense``), else None."""
        plan = self.plan
        a, b = plan.bounds(k)
        if len(ranks) != b - a:
            raise ValueError(f"chunk {k} has {b - a} scenarios, got {len(ranks)}")
        stab = stability_rows(np.arange(a, b), plan.kind, plan.block_size) - a
        r_stab = ranks[stab]
        hist = rank_histogram(r_stab) if plan.dense else None
        if k in self.chunks:
            return hist  # already counted (a task run twice on this worker)
        dev = rank_deviation(ranks, plan.nominal_rank) if deviation is None else deviation
        self.hist.add_ranks(r_stab)
        top = r_stab[:, plan.top, :].astype(np.int16)
        self.above += (top[:, :, None, :] < top[:, None, :, :]).sum(axis=0).transpose(2, 0, 1)
        spearman, kendall = correlations(r_stab, plan.nominal_rank)
        rbar = dev[stab] / ranks.shape[1]
        for name, v in zip(STATS, (rbar, spearman, kendall), strict=True):
            self.dist[name] = [combine(d, tally(v[:, f])) for f, d in enumerate(self.dist[name])]
        self.n_stability += len(stab)
        if weights is not None and plan.n_nodes:
            cells, wsum = first_weight_sums(r_stab, np.asarray(weights)[stab])
            self.first_cells, self.first_wsum = merge_cells(np.r_[self.first_cells, cells],
                                                            np.concatenate([self.first_wsum, wsum]))
        if self.sums:
            first = a // plan.block_size
            for name, out in (("rank", ranks), ("score", scores)):
                if name in self.sums:
                    self.sums[name].add(out.reshape(len(out), -1), first)
            self.sums["rbar"].add(dev, first)
        if self.given is not None:
            if design is None:
                raise ValueError("the given-data sums need the chunk's design rows")
            self.given.add(design, scores, ranks, dev / ranks.shape[1])
        self.chunks.add(k)
        return hist

    def merge(self, other: Summary) -> bool:
        """Add another summary of disjoint chunks; False (and nothing added) if they overlap."""
        if other.chunks & self.chunks:
            return False
        self.chunks |= other.chunks
        self.hist.merge(other.hist)
        self.above += other.above
        self.n_stability += other.n_stability
        for name in STATS:
            self.dist[name] = [combine(a, b) for a, b in zip(self.dist[name], other.dist[name], strict=True)]
        self.first_cells, self.first_wsum = merge_cells(np.r_[self.first_cells, other.first_cells],
                                                        np.concatenate([self.first_wsum, other.first_wsum]))
        for name, s in self.sums.items():
            s.merge(other.sums[name])
        if other.given is not None:
            self.given = other.given if self.given is None else self.given.merge(other.given)
        return True

    def export(self) -> dict:
        """Everything but the plan as plain arrays and numbers (what a worker sends; see ``from_export``)."""
        out = {"chunks": np.array(sorted(self.chunks), np.int64), "hist": self.hist.trimmed().export(),
               "above": self.above,
               "n_stability": self.n_stability, "sums": {name: s.export() for name, s in self.sums.items()},
               "first_cells": self.first_cells, "first_wsum": self.first_wsum,
               "given": None if self.given is None else self.given.export()}
        for name, per_field in self.dist.items():
            out[f"{name}_values"] = np.concatenate([v for v, _ in per_field])
            out[f"{name}_counts"] = np.concatenate([c for _, c in per_field])
            out[f"{name}_sizes"] = np.array([len(v) for v, _ in per_field], np.int64)
        return out

    @classmethod
    def from_export(cls, plan: Plan, state: dict) -> Summary:
        out = cls(plan, sobol=False)
        out.chunks = set(map(int, state["chunks"]))
        out.hist, out.above = RankHistogram.from_export(state["hist"]), np.array(state["above"])  # writable copies
        out.n_stability = int(state["n_stability"])
        if "first_cells" in state:
            out.first_cells = np.array(state["first_cells"], np.int64)
            out.first_wsum = np.array(state["first_wsum"], np.int64).reshape(len(out.first_cells), 2, plan.n_nodes)
        for name in STATS:
            cuts = np.cumsum(state[f"{name}_sizes"])[:-1]
            out.dist[name] = list(zip(np.split(np.array(state[f"{name}_values"]), cuts),
                                      np.split(np.array(state[f"{name}_counts"]), cuts), strict=True))
        out.sums = {name: SobolSums.from_export(s) for name, s in state["sums"].items()}
        out.given = GivenData.from_export(state["given"]) if state.get("given") is not None else None
        return out

    def sobol_result(self, name: str, conf_level: float) -> dict[str, np.ndarray]:
        """Sobol' indices of output set ``name`` ("rank", "score", "rbar"): finished by the workers, or now."""
        if name in self.results and self.results_conf == conf_level:
            return self.results[name]
        return self.sums[name].result(conf_level)

    @property
    def has_sobol(self) -> bool:
        return bool(self.sums or self.results)

    def quantile(self, name: str, q: float) -> np.ndarray:
        """Type-7 quantile of statistic ``name`` per field over the stability rows."""
        return np.array([tally_quantile(v, c, q) for v, c in self.dist[name]])

    def mean(self, name: str) -> np.ndarray:
        return np.array([tally_mean(v, c) for v, c in self.dist[name]])

    def central_weights(self) -> np.ndarray:
        """SMAA-2 central weights (city, field, node): the mean weight vector over the stability rows where
        the city ranks first in the field; NaN where it never does."""
        n_c, n_f = self.plan.nominal_rank.shape
        out = np.full((n_c * n_f, self.plan.n_nodes), np.nan)
        first = self.hist.rows(self.first_cells)[:, 0]
        out[self.first_cells] = from_fixed_point(self.first_wsum) / first[:, None]
        return out.reshape(n_c, n_f, -1)
