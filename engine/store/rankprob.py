"""Rank probabilities read from a stored analysis group, in either layout (dense or band)."""

from __future__ import annotations

import numpy as np
import xarray as xr


def rank_prob(analysis: xr.Dataset, field: str, cities: np.ndarray | None = None) -> np.ndarray:
    """P(rank = r) (city, rank 1..cities) in a field, for the given city indices (default all), from an
    analysis with either layout (dense ``rank_prob`` or its band form). Only the part of the band values
    these cities use is read."""
    n_c = analysis.sizes["city"]
    idx = np.arange(n_c) if cities is None else np.asarray(cities, np.int64)
    if "rank_prob" in analysis:
        return analysis["rank_prob"].sel(field=field).values[idx]
    sel = analysis[["rank_prob_first", "rank_prob_start", "rank_prob_width"]].sel(field=field)
    first, start, width = (sel[f"rank_prob_{k}"].values[idx].astype(np.int64) for k in ("first", "start", "width"))
    out = np.zeros((len(idx), n_c))
    used = width > 0
    if not used.any():
        return out
    lo, hi = int(start[used].min()), int((start + width)[used].max())
    values = analysis["rank_prob_values"][lo:hi].values
    for i in np.flatnonzero(used):
        f, s, w = first[i], start[i] - lo, width[i]
        out[i, f - 1:f - 1 + w] = values[s:s + w]
    return out
