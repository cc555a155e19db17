"""The given-data state of a Monte Carlo run: how its scenarios are binned and classed, and the sums of
its ranks, scores and R-bar (:mod:`engine.stats.given` has the estimator).

Memory: the tables hold outputs x factor bins x classes int32 cells; :func:`make_config` keeps them under
:data:`BUDGET_CELLS` (64 MiB per summary) by halving the continuous factors' bins (down to 4), then
merging rank classes and halving the score classes (down to 8), and switches the given-data analysis off
(None) beyond that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..design import decode, design_rows
from ..kernel import Prepared, evaluate
from ..spec import Factor, Spec
from .given import RANK_CLASSES, SCORE_CLASSES, Classes, GivenSums, factor_bins, plischke_bins

MAX_BINS = 32  # continuous factors: Plischke's rule (as SALib's delta), capped at this many bins
MIN_BINS = 4
MIN_CLASSES = 8
PILOT = 512  # the run's first design rows, whose scores set the score classes' edges
BUDGET_CELLS = 2**24  # int32 table cells of one summary (64 MiB)


@dataclass(frozen=True)
class GivenConfig:
    """How a Monte Carlo run's scenarios are binned and classed (a pure function of its spec)."""

    factors: tuple[Factor, ...]
    n_bins: tuple[int, ...]
    rank: Classes
    score: Classes
    rbar: Classes
    nominal_score: np.ndarray  # (city * field,) the score sums' shift
    note: str = ""  # what the memory bound changed


def table_cells(n_outputs: dict[str, int], n_bins: Sequence[int], classes: dict[str, int]) -> int:
    return sum(n_outputs[k] * classes[k] for k in n_outputs) * int(sum(n_bins))


def make_config(spec: Spec, prep: Prepared, schemes: np.ndarray, nominal_rank: np.ndarray,
                nominal_score: np.ndarray, budget: int = BUDGET_CELLS) -> GivenConfig | None:
    """The given-data configuration of a Monte Carlo spec, or None (Sobol designs, or over the memory
    bound). Score classes come from the run's first :data:`PILOT` scenarios (computed here)."""
    if spec.design.kind == "sobol" or not spec.factors:
        return None
    n_c, n_f = nominal_rank.shape
    n = spec.n_scenarios
    cont = min(MAX_BINS, plischke_bins(n))
    outputs = {"rank": n_c * n_f, "score": n_c * n_f, "rbar": n_f}

    def bins_for(c: int) -> list[int]:
        return [len(f.choices) if f.discrete else c for f in spec.factors]

    rank_max, score_k = RANK_CLASSES, SCORE_CLASSES
    notes = []

    def cells() -> int:
        k = {"rank": Classes.ranks(n_c, rank_max).K, "score": score_k + 1, "rbar": score_k + 1}
        return table_cells(outputs, bins_for(cont), k)

    while cells() > budget and cont > MIN_BINS:
        cont //= 2
        notes.append(f"continuous factors' bins reduced to {cont}")
    while cells() > budget and (rank_max > MIN_CLASSES or score_k > MIN_CLASSES):
        rank_max, score_k = max(MIN_CLASSES, rank_max // 2), max(MIN_CLASSES, score_k // 2)
        notes.append(f"rank classes <= {rank_max}, score classes {score_k}")
    if cells() > budget:
        return None
    p = min(n, PILOT)
    dec = decode(spec, prep.tree, design_rows(spec, 0, p), schemes)
    scores, ranks = evaluate(prep, dec.batch)
    rbar = np.abs(ranks.astype(np.int64) - nominal_rank[None]).sum(axis=1) / n_c
    return GivenConfig(tuple(spec.factors), tuple(bins_for(cont)), Classes.ranks(n_c, rank_max),
                       Classes.quantiles(scores.reshape(p, -1), score_k), Classes.quantiles(rbar, score_k),
                       np.asarray(nominal_score, np.float64).ravel(), "; ".join(notes))


class GivenData:
    """The given-data sums of a run's ranks, scores and R-bar (see the module docstring)."""

    def __init__(self, config: GivenConfig | None, sums: dict[str, GivenSums] | None = None) -> None:
        self.config = config
        if sums is None:
            c = config
            M = len(c.nominal_score)
            sums = {"rank": GivenSums(c.n_bins, M, c.rank),
                    "score": GivenSums(c.n_bins, M, c.score, c.nominal_score),
                    "rbar": GivenSums(c.n_bins, c.rbar.edges.shape[0], c.rbar)}
        self.sums = sums
        self.note = config.note if config is not None else ""

    def add(self, x: np.ndarray, scores: np.ndarray, ranks: np.ndarray, rbar: np.ndarray) -> None:
        """Add scenarios: design rows ``x`` (scenario, factor), scores and ranks (scenario, city, field),
        R-bar (scenario, field)."""
        if self.config is None:
            raise ValueError("these given-data sums were received for merging only; they cannot bin new rows")
        bins = factor_bins(self.config.factors, self.config.n_bins, x)
        n = len(x)
        self.sums["rank"].add(bins, ranks.reshape(n, -1))
        self.sums["score"].add(bins, scores.reshape(n, -1))
        self.sums["rbar"].add(bins, rbar.reshape(n, -1))

    def merge(self, other: GivenData) -> GivenData:
        for name, s in self.sums.items():
            s.merge(other.sums[name])
        return self

    def export(self) -> dict:
        return {"sums": {k: s.export() for k, s in self.sums.items()}, "note": self.note}

    @classmethod
    def from_export(cls, state: dict) -> GivenData:
        out = cls(None, {k: GivenSums.from_export(s) for k, s in state["sums"].items()})
        out.note = str(state.get("note", ""))
        return out

    @property
    def n_bins(self) -> np.ndarray:
        return self.sums["rank"].n_bins

    def result(self, num_resamples: int, conf_level: float, seed: int) -> dict[str, dict[str, np.ndarray]]:
        return {k: s.result(num_resamples, conf_level, seed + i) for i, (k, s) in enumerate(self.sums.items())}
