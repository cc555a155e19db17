"""The vectorised kernel: scores and ranks of every city in every field for a whole batch of scenarios.

A batch says, per scenario, which data preparation (normalisation/outlier/imputation), which
aggregation method and which renormalised weights to use. Scenarios sharing a preparation and an
aggregation are evaluated together: with complete data and a compensatory aggregation the field score
is linear in transformed data (x, log x or 1/x), so one matmul per group of scenarios gives every field
score; missing values and the non-compensatory Copeland method go through a level-by-level path that is
still vectorised over scenarios. No Python loop runs per scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np
import xarray as xr

from ..data import data_hash
from ..data.tree import Tree
from ..errors import UserError
from ..methods import AGGREGATIONS, Prep, levels, prepare
from .ranking import competition_rank

METHODS = ("arithmetic", "geometric", "harmonic")  # the compiled fast path's method codes 0, 1, 2 (see _back)


@dataclass
class Batch:
    """Decoded scenarios: indices into ``preps`` and ``methods`` plus weights (scenario, node)."""

    preps: list[Prep]
    prep_idx: np.ndarray
    methods: list[str]
    method_idx: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.prep_idx)


@dataclass
class Prepared:
    """A dataset with its tree and a cache of prepared (normalised) data per preparation."""

    ds: xr.Dataset
    tree: Tree = field(init=False)
    cache: dict = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.tree = Tree.from_dataset(self.ds)

    def data(self, prep: Prep) -> np.ndarray:
        if prep not in self.cache:
            self.cache[prep] = prepare(self.ds, prep)
        return self.cache[prep]

    def complete(self, prep: Prep) -> bool:
        """Whether the prepared data have no missing value (cached)."""
        key = (prep, "complete")
        if key not in self.cache:
            self.cache[key] = not np.isnan(self.data(prep)).any()
        return self.cache[key]

    def transformed(self, prep: Prep, method: str) -> np.ndarray:
        """x, log x or 1/x for the aggregation method, laid out (indicator, city * field) as the linear kernel
        reads it (transposed once here rather than on every call); non-positive values are a clear error."""
        key = (prep, method)
        if key not in self.cache:
            x = self.data(prep)
            if AGGREGATIONS[method].props.get("needs_positive"):
                _require_positive(x, method, prep)
            x = AGGREGATIONS[method](x)
            self.cache[key] = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)
        return self.cache[key]


_shared: tuple[str, Prepared] | None = None


def shared(ds: xr.Dataset) -> Prepared:
    """The :class:`Prepared` of ``ds`` shared in this process: that of the last dataset asked for if it has
    the same :func:`~engine.data.data_hash` (the values and all metadata that change results), else a new
    one. The spec checks, the store's layout and the analysis (whose spec is rebuilt from the store)
    prepare the same data, which takes a second at 2000 cities."""
    global _shared
    key = data_hash(ds)
    if _shared is None or _shared[0] != key:
        _shared = (key, Prepared(ds))
    return _shared[1]


def evaluate(prep: Prepared, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Scores float32 and ranks int16, both (scenario, city, field + overall)."""
    scores = scores_only(prep, batch)
    return scores, competition_rank(scores, axis=1)


def scores_only(prep: Prepared, batch: Batch) -> np.ndarray:
    """The scores of :func:`evaluate` (float32 (scenario, city, field + overall)), without ranking them."""
    tree = prep.tree
    n_city = prep.ds.sizes["city"]
    scores = np.empty((len(batch), n_city, tree.n_fld + 1), dtype=np.float32)
    combo = batch.prep_idx.astype(np.int64) * len(batch.methods) + batch.method_idx
    for key in np.unique(combo):
        rows = np.flatnonzero(combo == key)
        p, m = batch.preps[key // len(batch.methods)], batch.methods[key % len(batch.methods)]
        scores[rows] = _scores(prep, p, m, batch.weights[rows])
    return scores


def _scores(prep: Prepared, p: Prep, method: str, w: np.ndarray) -> np.ndarray:
    tree = prep.tree
    m_group, m_field, m_overall = levels(method)
    x = prep.data(p)
    n_s, (n_c, n_f, _) = len(w), x.shape
    if m_group == m_field == m_overall in METHODS and prep.complete(p):
        out32 = np.empty((n_s, n_c, n_f + 1), dtype=np.float32)
        _linear(prep.transformed(p, m_group), tree.effective(w), np.ascontiguousarray(w[:, len(tree.nodes) - n_f:]),
                METHODS.index(m_group), out32)
        return out32
    out = np.empty((n_s, n_c, n_f + 1))
    fields = _aggregate_tree(tree, x, w, m_group, m_field, p)
    out[:, :, :n_f] = fields
    if n_f == 1:
        out[:, :, n_f] = fields[:, :, 0]
        return out
    fw = w[:, None, None, len(tree.nodes) - n_f:]
    out[:, :, n_f] = _combine(fields[:, :, None, :], fw, m_overall, p, "overall")[:, :, 0]
    return out


def _aggregate_tree(tree: Tree, x: np.ndarray, w: np.ndarray, m_group: str, m_field: str,
                    p: Prep | None = None) -> np.ndarray:
    """Field scores (S, C, F) level by level (groups with ``m_group``, the field score with ``m_field``);
    missing values skipped with weights renormalised."""
    n_s = len(w)
    values: dict[int, np.ndarray] = {}  # node index -> (S or 1, C, F) scores
    for i in range(tree.n_ind):
        values[i] = x[None, :, :, i]
    for unit, children in tree.steps:
        v = np.stack([np.broadcast_to(values[c], (n_s, *x.shape[:2])) for c in children], axis=-1)
        wc = w[:, children][:, None, None, :]
        level = "field" if unit == tree.root else "group"
        res = _combine(v, wc, m_field if unit == tree.root else m_group, p, level)
        if unit == tree.root:
            return res
        values[tree.n_ind + unit] = res
    raise AssertionError("tree has no root step")


def _combine(v: np.ndarray, w: np.ndarray, method: str, p: Prep | None, level: str) -> np.ndarray:
    """Aggregate children (last axis) with one registered method (engine/methods/aggregate.py)."""
    agg = AGGREGATIONS[method]
    if agg.props.get("outranking"):
        return _copeland(v, w)
    if agg.props.get("needs_positive"):
        _require_positive(v, method, p, level)
    return agg.props["inverse"](_wmean(agg(v), w))


def _require_positive(v: np.ndarray, method: str, p: Prep | None, level: str = "") -> None:
    """Geometric and harmonic means need positive values: a clear error, never a silent NaN."""
    present = v[~np.isnan(v)]
    if not present.size or present.min() > 0:
        return
    where = f" at the {level} level" if level else ""
    norm = f" with normalisation {p.normalisation}" if p is not None else ""
    raise UserError(f"aggregation {method}{where} needs positive values, but the values to aggregate go down "
                    f"to {present.min():g}{norm}; pair it with a positive normalisation such as minmax:1,100")


def _wmean(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean over the last axis skipping NaN (weights renormalised over what is present)."""
    have = ~np.isnan(v)
    ww = np.where(have, w, 0.0)
    den = ww.sum(axis=-1)
    num = np.where(have, v, 0.0) * ww
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num.sum(axis=-1) / den, np.nan)


COPELAND_TIE = 1e-9  # weight margins within this share of the compared weight are ties (see _copeland)


def _copeland(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Copeland outranking score over the city axis (1) of v (S, C, F, K) with weights (S, 1, 1, K):
    city a beats b when the weight of the children where a > b exceeds the weight of those where b > a
    (the same as: the share of the weight where a > b, plus half of that where they tie, exceeds one half);
    score = wins - losses. Margins within ``COPELAND_TIE`` of the weight compared are ties: equal sums of
    different weights, added in another order, differ in their last bits, and a pair must never beat each
    other. Cities with no values get NaN."""
    n_s, n_c, n_f, n_k = v.shape
    have = ~np.isnan(v)
    wk = np.broadcast_to(w, v.shape)
    margin = np.zeros((n_s, n_c, n_c, n_f))  # weight where a > b minus weight where b > a
    tot = np.zeros((n_s, n_c, n_c, n_f))
    for k in range(n_k):  # loop over children (a handful), not scenarios
        a, b = v[:, :, None, :, k], v[:, None, :, :, k]
        both = have[:, :, None, :, k] & have[:, None, :, :, k]
        wt = np.where(both, wk[:, :, None, :, k], 0.0)
        margin += wt * ((a > b).astype(np.float64) - (a < b))
        tot += wt
    tie = COPELAND_TIE * tot
    score = (margin > tie).sum(axis=2) - (margin < -tie).sum(axis=2)
    return np.where(have.any(axis=-1), score.astype(np.float64), np.nan)


_ROW_BLOCK = 1024  # city rows per block of _linear: the block's data (rows x fields x indicators) stays in cache


@numba.njit(cache=True, nogil=True)
def _linear(xt: np.ndarray, weff: np.ndarray, fw: np.ndarray, method: int, out: np.ndarray) -> None:
    """Field scores as weighted sums of transformed data (xt (indicator, city*field)), the overall composite
    as the weighted sum of field scores, then back-transformed (0 arithmetic, 1 geometric, 2 harmonic).
    Fixed summation order (indicator by indicator, field by field): a scenario's result never depends on
    the rest of its batch. The inner loop runs over the city x field rows, so it vectorises; cities go in
    blocks, every scenario passing over one block before the next, so large data are read from memory once
    per batch rather than once per scenario; and scenarios go four at a time over the rows, so each value
    read is used four times (the sums and their order are the same whatever the grouping)."""
    n_s, n_i = weff.shape
    n_f = fw.shape[1]
    n_rows = xt.shape[1]
    n_c = n_rows // n_f
    cb = max(1, _ROW_BLOCK // n_f)  # cities per block
    acc = np.empty((4, cb * n_f))
    for c0 in range(0, n_c, cb):
        c1 = min(n_c, c0 + cb)
        r0, r1 = c0 * n_f, c1 * n_f
        n4 = n_s - n_s % 4
        for s0 in range(0, n4, 4):
            _sums4(xt, weff, s0, r0, r1, acc)
            for k in range(4):
                _finish(acc[k], fw, s0 + k, c0, c1, n_f, method, out)
        for s in range(n4, n_s):
            _sums1(xt, weff, s, r0, r1, acc[0])
            _finish(acc[0], fw, s, c0, c1, n_f, method, out)


@numba.njit(cache=True, inline="always")
def _sums1(xt, weff, s, r0, r1, a):  # pragma: no cover - compiled
    """Rows r0..r1 of scenario s's field sums into a: indicators four at a time, in order."""
    n_i = weff.shape[1]
    for r in range(r1 - r0):
        a[r] = 0.0
    i = 0
    while i + 4 <= n_i:  # four indicators per pass over a, added in the same order as one by one
        w0, w1, w2, w3 = weff[s, i], weff[s, i + 1], weff[s, i + 2], weff[s, i + 3]
        x0, x1, x2, x3 = xt[i], xt[i + 1], xt[i + 2], xt[i + 3]
        for r in range(r0, r1):
            a[r - r0] = a[r - r0] + x0[r] * w0 + x1[r] * w1 + x2[r] * w2 + x3[r] * w3
        i += 4
    for j in range(i, n_i):
        wj = weff[s, j]
        xj = xt[j]
        for r in range(r0, r1):
            a[r - r0] += xj[r] * wj


@numba.njit(cache=True, inline="always")
def _sums4(xt, weff, s, r0, r1, acc):  # pragma: no cover - compiled
    """:func:`_sums1` of scenarios s..s+3 at once (acc[k] for scenario s + k), each value of xt read once:
    every scenario's sums are the same expressions, in the same order, as in :func:`_sums1`."""
    n_i = weff.shape[1]
    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
    for r in range(r1 - r0):
        a0[r] = 0.0
        a1[r] = 0.0
        a2[r] = 0.0
        a3[r] = 0.0
    i = 0
    while i + 4 <= n_i:
        x0, x1, x2, x3 = xt[i], xt[i + 1], xt[i + 2], xt[i + 3]
        u0, u1, u2, u3 = weff[s, i], weff[s, i + 1], weff[s, i + 2], weff[s, i + 3]
        v0, v1, v2, v3 = weff[s + 1, i], weff[s + 1, i + 1], weff[s + 1, i + 2], weff[s + 1, i + 3]
        y0, y1, y2, y3 = weff[s + 2, i], weff[s + 2, i + 1], weff[s + 2, i + 2], weff[s + 2, i + 3]
        z0, z1, z2, z3 = weff[s + 3, i], weff[s + 3, i + 1], weff[s + 3, i + 2], weff[s + 3, i + 3]
        for r in range(r0, r1):
            e0, e1, e2, e3 = x0[r], x1[r], x2[r], x3[r]
            q = r - r0
            a0[q] = a0[q] + e0 * u0 + e1 * u1 + e2 * u2 + e3 * u3
            a1[q] = a1[q] + e0 * v0 + e1 * v1 + e2 * v2 + e3 * v3
            a2[q] = a2[q] + e0 * y0 + e1 * y1 + e2 * y2 + e3 * y3
            a3[q] = a3[q] + e0 * z0 + e1 * z1 + e2 * z2 + e3 * z3
        i += 4
    for j in range(i, n_i):
        xj = xt[j]
        u, v, y, z = weff[s, j], weff[s + 1, j], weff[s + 2, j], weff[s + 3, j]
        for r in range(r0, r1):
            e = xj[r]
            q = r - r0
            a0[q] += e * u
            a1[q] += e * v
            a2[q] += e * y
            a3[q] += e * z


@numba.njit(cache=True, inline="always")
def _finish(a, fw, s, c0, c1, n_f, method, out):  # pragma: no cover - compiled
    """Scenario s's field sums a (cities c0..c1) back-transformed into out, with the overall composite."""
    for c in range(c0, c1):
        total = 0.0
        for f in range(n_f):
            v = a[(c - c0) * n_f + f]
            total += fw[s, f] * v
            out[s, c, f] = _back(v, method)
        out[s, c, n_f] = _back(a[(c - c0) * n_f + n_f - 1] if n_f == 1 else total, method)


@numba.njit(cache=True, inline="always")
def _back(v: float, method: int) -> float:
    if method == 1:
        return math.exp(v)
    if method == 2:
        return 1.0 / v
    return v
