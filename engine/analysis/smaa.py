"""SMAA-2 descriptive measures of every city x field (Lahdelma & Salminen 2001; Tervonen & Figueira 2008):
central weights and confidence factors. The third, rank acceptability, is the analysis's ``rank_prob``.

* ``central_weight(city, field, node)``: the mean weight vector (node weights renormalised within their
  parents, as the store's ``weight``) over the stability rows in which the city ranks first in the field
  (ties included); NaN where it never does. Its sums are accumulated by the sweep's tasks
  (:class:`engine.stats.summary.Summary`), so this needs no pass over the store.
* ``confidence_factor(city, field)``: the probability that the city ranks first in the field when the
  weights are its central weights and every other choice (normalisation, aggregation, outliers,
  imputation, the excluded indicator) is as sampled; NaN where the central weights are undefined. A second
  evaluation pass, after the sweep, in the analysing process: the first ``M`` stability rows of the design
  (``[design] confidence_samples``, default 1024; 0 = none) are decoded again, every node weight is
  replaced by the city's central weight (the row's excluded indicator stays excluded, its siblings
  renormalised), and the rows are evaluated in batches of every (city, field) that ever ranks first.
  With the weights replaced, a row's scores depend only on its preparation, aggregation and excluded
  indicator, so rows sharing those are evaluated once and counted with their multiplicity (the kernels
  give a scenario the same scores whatever else is in its batch: the result is the same). So the cost is
  (distinct such combinations among the M rows, at most M) x (number of such cells) evaluations whatever
  the number of scenarios, and the estimate's standard error is sqrt(p (1 - p) / M) <= 0.5 / sqrt(M)
  (0.016 at M = 1024) over Monte Carlo rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..design import decode, design_rows, exclude
from ..kernel import Batch, Prepared, scores_only
from ..spec import Spec
from ..stats.summary import Summary
from ..sweep import store_job
from ..sweep.tasks import worker_state

BATCH = 8192  # scenarios evaluated at once (rows x cells) ...
BATCH_BYTES = 2**26  # ... and at most this many bytes of their scores (large indices: 2000 cities x 21 fields)


def smaa(path: Path, summary: Summary) -> xr.Dataset:
    """``central_weight`` and ``confidence_factor`` of a run's summary (its spec read from the store)."""
    central = summary.central_weights()
    state = worker_state(store_job(path, analyse=False))
    spec = state.spec
    rows = confidence_rows(spec, min(spec.design.confidence_samples, summary.n_stability or spec.n_scenarios))
    conf = confidence_factors(spec, state.prep, state.schemes, central, rows)
    cf = ("city", "field")
    out = xr.Dataset({"central_weight": ((*cf, "node"), central), "confidence_factor": (cf, conf)},
                     coords={"node": state.prep.tree.nodes})  # attributes: engine.store.attributes
    out.attrs.update(confidence_samples=len(rows),
                     smaa="SMAA-2 central weights and confidence factors (Lahdelma & Salminen 2001)")
    return out


def confidence_rows(spec: Spec, m: int) -> np.ndarray:
    """The first ``m`` stability rows of the design: rows 0..m-1 (Monte Carlo), or the A and B rows of the
    first Saltelli blocks."""
    if spec.design.kind != "sobol":
        return np.arange(min(m, spec.n_scenarios))
    k = spec.block_size
    blocks = np.arange(min(-(-m // 2), spec.design.n))
    return (blocks[:, None] * k + np.array([0, k - 1])[None, :]).ravel()[:m]


def confidence_factors(spec: Spec, prep: Prepared, schemes: np.ndarray, central: np.ndarray,
                       rows: np.ndarray) -> np.ndarray:
    """(city, field): the share of ``rows`` in which the city ranks first in the field with every weight
    replaced by its central weights (``central`` (city, field, node), NaN rows skipped)."""
    n_c, n_f, n_nodes = central.shape
    out = np.full((n_c, n_f), np.nan)
    cells = np.flatnonzero(~np.isnan(central).any(axis=2).ravel())
    if not len(cells) or not len(rows):
        return out
    city, fld = cells // n_f, cells % n_f
    w_cells = central.reshape(-1, n_nodes)[cells]
    lo = int(rows.min())
    x = design_rows(spec, lo, int(rows.max()) + 1)[rows - lo]
    dec = decode(spec, prep.tree, x, schemes)
    b = dec.batch
    # the rows' distinct (preparation, aggregation, excluded indicator): all that counts once weights are replaced
    _, excl_idx = np.unique(dec.choices["excluded"], return_inverse=True)
    key = (b.prep_idx.astype(np.int64) * len(b.methods) + b.method_idx) * (int(excl_idx.max()) + 1) + excl_idx.ravel()
    _, first, mult = np.unique(key, return_index=True, return_counts=True)
    hits = np.zeros(len(cells), np.int64)
    per = n_c * n_f * 4  # float32 scores of one evaluation
    step = max(1, min(BATCH, BATCH_BYTES // per) // len(cells))
    for start in range(0, len(first), step):
        r = first[start:start + step]
        n = len(r)
        weights = exclude(prep.tree, np.repeat(w_cells, n, axis=0), np.tile(dec.choices["excluded"][r], len(cells)))
        batch = Batch(b.preps, np.tile(b.prep_idx[r], len(cells)), b.methods, np.tile(b.method_idx[r], len(cells)),
                      weights)
        scores = scores_only(prep, batch).reshape(len(cells), n, n_c, n_f)
        own = scores[np.arange(len(cells))[:, None], np.arange(n)[None, :], city[:, None], fld[:, None]]
        best = np.fmax.reduce(scores[np.arange(len(cells))[:, None], np.arange(n)[None, :], :, fld[:, None]], axis=-1)
        hits += ((own == best) * mult[start:start + step]).sum(axis=1)  # rank 1 (ties share it); NaN never equal
    out.reshape(-1)[cells] = hits / len(rows)
    return out
