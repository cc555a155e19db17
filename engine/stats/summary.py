"""The mergeable summary of a sweep: everything the analysis needs, accumulated chunk by chunk.

Each sweep task adds its chunk's scores and ranks to the summary held by its worker process, so the
analysis needs no second pass over the store. A summary holds, over the chunks it has seen:

* the rank histogram count(city, field, rank) (:class:`~engine.stats.rankhist.RankHistogram`: exact, over
  the band of ranks each city takes) and, for the top cities, how often a ranks above b;
* the exact distributions, per field, of R-bar, Spearman and Kendall over the stability rows (Monte
  Carlo: every row; Sobol: the A and B rows), as distinct values with counts: these statistics take few
  distinct values (R-bar is a multiple of 1/cities, the correlations are functions of integer sums), so
  their size is bounded by the data, not by the number of scenarios, and percentiles stay exact;
* for Sobol designs, :class:`engine.sobol.SobolSums` of every rank, every score and R-bar.

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
from .rankhist import RankHistogram, dense_fits
from .sobol import SobolSums

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
    layout: str = ""  # the store's rank_count_layout ("dense" or "band"; "" = by size)

    @classmethod
    def from_store(cls, store: xr.Dataset, num_resamples: int | None = None, seed: int = 0) -> Plan:
        a = store.attrs
        return cls(store["nominal_rank"].values.astype(np.int64), store["nominal_score"].values.astype(np.float32),
                   a["design_kind"], int(a["n_scenarios"]), int(a["chunk"]), int(a["block_size"]), int(a["design_n"]),
                   len(json.loads(a["factor_groups"])), bool(a["second_order"]),
                   int(num_resamples or a.get("num_resamples", 100)), seed + 1, a.get("rank_count_layout", "dense"))

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
    two (scenario, field) arrays. Ties as given (competition ranks); 1 when either ranking is constant."""
    return _correlations(np.ascontiguousarray(ranks), np.ascontiguousarray(nominal_rank, dtype=np.int64))


@numba.njit(cache=True, nogil=True)
def _correlations(ranks, nominal):  # pragma: no cover - compiled
    n_s, n_c, n_f = ranks.shape
    spearman = np.ones((n_s, n_f))
    kendall = np.ones((n_s, n_f))
    for f in range(n_f):
        nom = nominal[:, f]
        nc = nom - nom.mean()
        ss_n = (nc * nc).sum()
        n_tied_nom = 0  # pairs not tied in the nominal ranking
        for i in range(n_c):
            for j in range(i + 1, n_c):
                n_tied_nom += nom[i] != nom[j]
        for s in range(n_s):
            r = ranks[s, :, f]
            mean = 0.0
            for i in range(n_c):
                mean += r[i]
            mean /= n_c
            num = ss_r = 0.0
            for i in range(n_c):
                d = r[i] - mean
                num += d * nc[i]
                ss_r += d * d
            if ss_r * ss_n > 0:
                spearman[s, f] = num / np.sqrt(ss_r * ss_n)
            concord = 0
            untied = 0
            for i in range(n_c):
                for j in range(i + 1, n_c):
                    a = np.sign(np.int64(r[i]) - np.int64(r[j]))
                    concord += a * np.sign(nom[i] - nom[j])
                    untied += a != 0
            if untied * n_tied_nom > 0:
                kendall[s, f] = concord / np.sqrt(np.float64(untied) * n_tied_nom)
    return spearman, kendall


def sobol_kw(plan: Plan) -> dict:
    return dict(D=plan.n_groups, n=plan.n_base, second_order=plan.second_order, num_resamples=plan.num_resamples,
                seed=plan.seed)


def sobol_sums(plan: Plan, lo: int, hi: int, compact: bool = False) -> dict[str, SobolSums]:
    """Sobol' sums of the rank and score outputs [lo, hi) (cells city * fields + field)."""
    kw = dict(sobol_kw(plan), compact=compact)
    return {"rank": SobolSums(hi - lo, shift=plan.nominal_rank.ravel()[lo:hi], integer=True, **kw),
            "score": SobolSums(hi - lo, shift=plan.nominal_score.ravel()[lo:hi], **kw)}


def output_slice(n_outputs: int, part: int, parts: int) -> tuple[int, int]:
    """Outputs of share ``part`` of ``parts`` (contiguous, near-equal; as ``SobolSums.slice_export``)."""
    return (n_outputs * part) // parts, (n_outputs * (part + 1)) // parts


SHARD_BYTES = 2**28  # shard the rank and score Sobol' sums over the workers above this size (float64)


def sums_bytes(plan: Plan) -> int:
    """Bytes of the float64 bootstrap sums of every rank and score output (what sharding divides)."""
    D = plan.n_groups
    T = 2 + 3 * D + (D + D * (D - 1) // 2 if plan.second_order else 0)
    return 2 * plan.nominal_rank.size * T * plan.num_resamples * 8


class SobolShard:
    """One worker's share of a sharded sweep's Sobol' sums: the rank and score outputs [lo, hi) of every
    chunk, whichever worker computed it (compact sums: see ``SobolSums``). Chunks count once."""

    def __init__(self, plan: Plan, part: int, parts: int) -> None:
        self.plan, self.part, self.parts = plan, part, parts
        self.lo, self.hi = output_slice(plan.nominal_rank.size, part, parts)
        self.sums = sobol_sums(plan, self.lo, self.hi, compact=True)
        self.chunks: set[int] = set()
        self.lock = threading.Lock()  # tasks of one worker may run in several threads

    def add(self, k: int, first: int, ranks: np.ndarray, scores: np.ndarray) -> None:
        """Add chunk ``k``'s rank and score outputs of this share (rows, hi - lo), from base sample ``first``."""
        if k in self.chunks:
            return
        self.sums["rank"].add(ranks, first)
        self.sums["score"].add(scores, first)
        self.chunks.add(k)

    def result(self, conf_level: float) -> dict[str, dict]:
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
        self.sums: dict[str, SobolSums] = {}
        self.results: dict[str, dict] = {}  # Sobol results already finished elsewhere (see engine.sweep)
        self.results_conf: float | None = None
        if plan.sobol and sobol:
            self.sums = {"rbar": SobolSums(n_f, integer=True, **sobol_kw(plan))}
            if not sharded:  # too big to shard here (one process): compact sums, half the memory
                self.sums = {**sobol_sums(plan, 0, n_c * n_f, compact=sums_bytes(plan) > SHARD_BYTES), **self.sums}

    def add(self, k: int, scores: np.ndarray, ranks: np.ndarray,
            deviation: np.ndarray | None = None) -> np.ndarray | None:
        """Add chunk ``k`` (its scores and ranks (scenario, city, field)); return its dense rank histogram
        (city, field, rank) when the store keeps those (``Plan.dense``), else None."""
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
        if self.sums:
            first = a // plan.block_size
            if "rank" in self.sums:
                self.sums["rank"].add(ranks.reshape(len(ranks), -1), first)
                self.sums["score"].add(scores.reshape(len(scores), -1), first)
            self.sums["rbar"].add(dev, first)
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
        for name, s in self.sums.items():
            s.merge(other.sums[name])
        return True

    def export(self) -> dict:
        """Everything but the plan as plain arrays and numbers (what a worker sends; see ``from_export``)."""
        out = {"chunks": np.array(sorted(self.chunks), np.int64), "hist": self.hist.trimmed().export(), "above": self.above,
               "n_stability": self.n_stability, "sums": {name: s.export() for name, s in self.sums.items()}}
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
        for name in STATS:
            cuts = np.cumsum(state[f"{name}_sizes"])[:-1]
            out.dist[name] = list(zip(np.split(np.array(state[f"{name}_values"]), cuts),
                                      np.split(np.array(state[f"{name}_counts"]), cuts), strict=True))
        out.sums = {name: SobolSums.from_export(s) for name, s in state["sums"].items()}
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
