"""NaN-aware numeric helpers shared by the methods."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


@contextmanager
def quiet() -> Iterator[None]:
    """Silence NumPy's warnings for all-NaN slices and 0/0 that the code handles explicitly."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def average_rank(x: np.ndarray) -> np.ndarray:
    """Ranks along axis 0 (1 = smallest), ties sharing their average rank, NaN left out and kept NaN: as
    ``scipy.stats.rankdata(x, axis=0, method="average", nan_policy="omit")`` (without importing scipy.stats,
    which takes half a second)."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, np.nan)
    for j in np.ndindex(x.shape[1:]):
        col = (slice(None), *j)
        have = ~np.isnan(x[col])
        v = x[col][have]
        order = np.argsort(v, kind="stable")
        sv = v[order]
        first = np.r_[True, sv[1:] != sv[:-1]] if len(sv) else np.zeros(0, bool)
        starts = np.flatnonzero(first)
        ends = np.r_[starts[1:], len(sv)]
        r = np.empty(len(v))
        r[order] = ((starts + 1 + ends) / 2.0)[np.cumsum(first) - 1]
        res = np.full(len(have), np.nan)
        res[have] = r
        out[col] = res
    return out
