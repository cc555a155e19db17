"""Rank statistics of every city x field from its merged rank histogram: exact type-7 percentiles,
mean and absolute shift from nominal, top-k probabilities and rank acceptability (dense for small
indices, over each city's band of ranks for large ones: see :mod:`engine.stats.rankhist`)."""

from __future__ import annotations

import numpy as np

from ..stats.rankhist import RankHistogram, dense_fits

TOPS = (1, 3, 10)
RARE = 0.99  # a rank held in at least this share of scenarios is "nearly constant"


def hist_quantile(counts: np.ndarray, q: float) -> np.ndarray:
    """Type-7 quantile of integer values 1..R given their counts (..., R), exactly as
    ``np.percentile(values, 100 q)`` on the expanded values."""
    cum = np.cumsum(counts, axis=-1)
    n = cum[..., -1]
    h = (n - 1) * q
    lo = np.floor(h).astype(np.int64)
    frac = h - lo
    ranks = np.arange(1, counts.shape[-1] + 1)

    def value_at(i):  # the i-th smallest value (0-based)
        idx = (cum <= i[..., None]).sum(axis=-1)
        return ranks[np.minimum(idx, len(ranks) - 1)]

    v_lo = value_at(lo)
    v_hi = value_at(np.minimum(lo + 1, n - 1))
    return np.where(n > 0, v_lo + frac * (v_hi - v_lo), np.nan)


def rank_statistics(counts: RankHistogram | np.ndarray, nominal_rank: np.ndarray,
                    dense: bool | None = None) -> dict[str, tuple]:
    """Per (city, field) statistics from rank histograms ``counts`` (a :class:`RankHistogram`, or dense
    counts (city, field, rank_value)). The rank probabilities are ``rank_prob(city, field, rank_value)`` when
    ``dense`` (default: when the store keeps dense histograms, ``dense_fits``), else the same numbers over
    each cell's band of ranks: ``rank_prob_values(rank_band)`` with ``rank_prob_first``, ``_start`` and
    ``_width`` (city, field) (see :func:`rank_prob`)."""
    hist = counts if isinstance(counts, RankHistogram) else RankHistogram.from_dense(counts)
    st = hist.statistics(nominal_rank, (0.05, 0.5, 0.95), TOPS)
    q05, med, q95 = st["quantiles"]
    cf = ("city", "field")
    out = {
        "nominal_rank": (cf, nominal_rank.astype(np.int16)),
        "rank_mean": (cf, st["mean"]), "rank_median": (cf, med), "rank_q05": (cf, q05), "rank_q95": (cf, q95),
        "rank_interval_width": (cf, q95 - q05),
        "rank_median_shift": (cf, np.abs(nominal_rank - med)),
        "rank_abs_shift": (cf, st["abs_shift"]),
        "prob_top": ((*cf, "top"), st["top"]),
        "rank_prob_max": (cf, st["max_prob"]),
    }
    if dense if dense is not None else dense_fits(*hist.shape):
        out["rank_prob"] = ((*cf, "rank_value"), hist.dense() / np.maximum(st["total"], 1)[..., None])
    else:
        hist = hist.trimmed()
        out.update(band_variables("rank_prob", hist, hist.probabilities()))
    return out


def band_variables(name: str, hist: RankHistogram, values: np.ndarray) -> dict[str, tuple]:
    """The variables of a histogram's band layout: ``<name>_values(rank_band)`` (``values`` laid out as
    its counts) and, per (city, field), ``<name>_first`` (first rank of the band, 0 if empty),
    ``<name>_start`` (where the band starts in ``_values``) and ``<name>_width``."""
    cf = ("city", "field")
    return {f"{name}_values": (("rank_band",), values),
            f"{name}_first": (cf, hist.first.reshape(hist.shape)),
            f"{name}_start": (cf, hist.start[:-1].reshape(hist.shape)),
            f"{name}_width": (cf, hist.width.reshape(hist.shape))}


