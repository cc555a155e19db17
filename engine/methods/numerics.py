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
    which takes half a second). Every column at once: one sort per column (NaN last), then each tie run of
    sorted values [start, end) gives its members (start + 1 + end) / 2."""
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    cols = np.ascontiguousarray(x.reshape(n, int(np.prod(x.shape[1:]))).T)  # (column, n): sorts in memory order
    order = np.argsort(cols, axis=1)  # the order within a tie run does not change its ranks
    sv = np.take_along_axis(cols, order, axis=1).ravel()
    new = np.ones(sv.shape, bool)  # a tie run starts here: at every column's start, and where the value changes
    new[1:] = sv[1:] != sv[:-1]  # (NaN != NaN: each NaN alone, set NaN below)
    if n:
        new[::n] = True
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(sv)]
    base = starts // max(n, 1) * n  # the run's column start (runs never cross columns)
    r = (((starts - base) + 1 + (ends - base)) / 2.0)[np.cumsum(new) - 1]
    r[np.isnan(sv)] = np.nan
    out = np.empty(cols.shape)
    np.put_along_axis(out, order, r.reshape(cols.shape), axis=1)
    return np.ascontiguousarray(out.T).reshape(x.shape)
