"""Competition ranks ("1224"): 1 = highest score, ties share the lowest rank, NaN gets rank 0.

Scores are ranked as stored (float32), so ranks always agree with the stored scores. Keys pack an
order-preserving transform of the float32 bits (descending) with the city index into uint64; NumPy's
SIMD sort orders them and a numba pass scatters ranks with the tie rule.
"""

from __future__ import annotations

import numba
import numpy as np

NAN_KEY = np.uint64(0xFFFFFFFF)


def descending_keys(scores: np.ndarray) -> np.ndarray:
    """uint32 keys whose ascending order is the descending order of float32 ``scores``; NaN last."""
    s = np.ascontiguousarray(scores, dtype=np.float32) + np.float32(0.0)  # -0.0 -> 0.0
    u = s.view(np.uint32)
    neg = (u >> np.uint32(31)).astype(bool)
    asc = np.where(neg, ~u, u | np.uint32(0x80000000))  # ascending order of the floats
    key = ~asc
    key[np.isnan(s)] = np.uint32(0xFFFFFFFF)
    return key


@numba.njit(cache=True, nogil=True)
def _scatter(sorted_keys: np.ndarray, out: np.ndarray) -> None:
    rows, n = sorted_keys.shape
    for r in range(rows):
        prev = np.uint64(0xFFFFFFFFFFFFFFFF)
        rank = 0
        for j in range(n):
            k = sorted_keys[r, j]
            hi = k >> np.uint64(32)
            idx = k & np.uint64(0xFFFFFFFF)
            if hi == np.uint64(0xFFFFFFFF):
                out[r, idx] = 0
            else:
                if hi != prev:
                    rank = j + 1
                    prev = hi
                out[r, idx] = rank


def competition_rank(scores: np.ndarray, axis: int = 1) -> np.ndarray:
    """Ranks (int16) of ``scores`` along ``axis`` (the city axis), 1 = highest."""
    moved = np.moveaxis(scores, axis, -1)
    shape = moved.shape
    n = shape[-1]
    keys = descending_keys(moved).reshape(-1, n).astype(np.uint64) << np.uint64(32)
    keys |= np.arange(n, dtype=np.uint64)[None, :]
    keys.sort(axis=1)
    out = np.empty(keys.shape, dtype=np.int16)
    _scatter(keys, out)
    return np.moveaxis(out.reshape(shape), -1, axis)
