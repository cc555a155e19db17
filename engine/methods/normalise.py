"""Normalisations: each maps every (field, indicator) column over cities (axis 0) to a common scale.

The values arrive oriented (multiplied by the indicator's direction: higher is better) with NaN where
missing; NaN stays NaN. Add one with a decorated function in this file; its keyword-only parameters are
the ``name:p1,p2`` parameters of ``--set normalisation=...`` and of specs.
"""

from __future__ import annotations

import numpy as np

from .numerics import average_rank, quiet
from .registry import Option, Registry

NORMALISATIONS = Registry("normalisation")


def _lower_below_upper(lo: float, hi: float) -> str | None:
    return None if lo < hi else "the lower bound must be below the upper bound"


def _percentiles(qlo: float, qhi: float) -> str | None:
    return _lower_below_upper(qlo, qhi) or (
        None if 0 <= qlo < qhi <= 100 else "goalposts are percentiles with 0 <= qlo < qhi <= 100")


@NORMALISATIONS.register("none")
def none(x: np.ndarray) -> np.ndarray:
    """The oriented values as they are."""
    return x.copy()


@NORMALISATIONS.register("minmax", check=_lower_below_upper)
def minmax(x: np.ndarray, *, lo: float = 0.0, hi: float = 100.0) -> np.ndarray:
    """Rescale each column linearly to [lo, hi]; a constant column goes to the midpoint."""
    cmin, cmax = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    span = cmax - cmin
    u = np.where(span > 0, (x - cmin) / np.where(span > 0, span, 1.0), 0.5)
    return np.where(np.isnan(x), np.nan, lo + u * (hi - lo))


@NORMALISATIONS.register("zscore", check=lambda mean, sd: None if sd > 0 else
                         "the standard deviation must be positive")
def zscore(x: np.ndarray, *, mean: float = 0.0, sd: float = 1.0) -> np.ndarray:
    """Standardise each column (sample standard deviation) to the given mean and standard deviation; a
    constant column goes to the mean."""
    cmean = np.nanmean(x, axis=0)
    csd = np.nanstd(x, axis=0, ddof=1)
    z = np.where(csd > 0, (x - cmean) / np.where(csd > 0, csd, 1.0), 0.0)
    return np.where(np.isnan(x), np.nan, mean + z * sd)


@NORMALISATIONS.register("rank")
def rank(x: np.ndarray) -> np.ndarray:
    """Percentile rank: 100 * (average rank among available values) / (number available); in (0, 100]."""
    r = average_rank(x)
    n = np.sum(~np.isnan(x), axis=0)
    return np.where(np.isnan(x), np.nan, r / np.maximum(n, 1) * 100.0)


@NORMALISATIONS.register("distance_to_leader")
def distance_to_leader(x: np.ndarray) -> np.ndarray:
    """Percent of the best value: x / max * 100 for positive data; for oriented negative data
    (x = -raw), min raw / raw * 100."""
    best = np.nanmax(x, axis=0)
    return np.where(best > 0, x / np.where(best > 0, best, 1.0), best / x) * 100.0


@NORMALISATIONS.register("goalposts", check=_percentiles)
def goalposts(x: np.ndarray, *, qlo: float = 5.0, qhi: float = 95.0) -> np.ndarray:
    """Rescale between the column's qlo-th and qhi-th percentiles to [0, 100], clipping beyond them."""
    lo = np.nanpercentile(x, qlo, axis=0)
    hi = np.nanpercentile(x, qhi, axis=0)
    span = hi - lo
    u = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.5)
    return np.where(np.isnan(x), np.nan, np.clip(u, 0.0, 1.0) * 100.0)


def normalise(x: np.ndarray, opt: Option) -> np.ndarray:
    """Normalise with an ``Option`` (name and parameters) from ``parse_option("normalisation", ...)``."""
    with quiet():
        return NORMALISATIONS[opt.name](x, params=opt.params)
