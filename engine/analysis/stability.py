"""Rank statistics of every city x field from its merged rank histogram: exact type-7 percentiles,
mean and absolute shift from nominal, top-k probabilities and rank acceptability."""

from __future__ import annotations

import numpy as np

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


def rank_statistics(counts: np.ndarray, nominal_rank: np.ndarray) -> dict[str, tuple]:
    """Per (city, field) statistics from rank histograms ``counts`` (city, field, rank_value)."""
    total = counts.sum(axis=-1, keepdims=True)
    prob = counts / np.maximum(total, 1)
    r = np.arange(1, counts.shape[-1] + 1)
    mean = (prob * r).sum(axis=-1)
    q05, med, q95 = (hist_quantile(counts, q) for q in (0.05, 0.5, 0.95))
    cum = np.cumsum(prob, axis=-1)
    top = np.stack([cum[..., min(t, counts.shape[-1]) - 1] for t in TOPS], axis=-1)
    shift = (prob * np.abs(r - nominal_rank[..., None])).sum(axis=-1)
    cf = ("city", "field")
    return {
        "nominal_rank": (cf, nominal_rank.astype(np.int16)),
        "rank_mean": (cf, mean), "rank_median": (cf, med), "rank_q05": (cf, q05), "rank_q95": (cf, q95),
        "rank_interval_width": (cf, q95 - q05),
        "rank_median_shift": (cf, np.abs(nominal_rank - med)),
        "rank_abs_shift": (cf, shift),
        "prob_top": ((*cf, "top"), top),
        "rank_prob": ((*cf, "rank_value"), prob),
    }
