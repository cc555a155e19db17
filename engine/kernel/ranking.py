"""Competition ranks ("1224"): 1 = highest score, ties share the lowest rank, NaN gets rank 0.

Scores are ranked as stored (float32), so ranks always agree with the stored scores. Keys pack an
order-preserving transform of the float32 bits (descending) with the city index into uint64; NumPy's
SIMD sort orders them and a numba pass scatters ranks with the tie rule.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _pack(scores: np.ndarray, keys: np.ndarray) -> None:
    """keys[s * F + f, c] = (descending key of scores[s, c, f]) << 32 | c."""
    n_s, n_c, n_f = scores.shape
    bits = scores.view(np.uint32)
    for s in range(n_s):
        for f in range(n_f):
            for c in range(n_c):
                v = scores[s, c, f]
                if v != v:
                    k = np.uint64(0xFFFFFFFF)
                elif v == 0:
                    k = np.uint64(0x7FFFFFFF)  # +0.0 and -0.0 tie
                else:
                    u = bits[s, c, f]
                    asc = ~u if u >> np.uint32(31) else u | np.uint32(0x80000000)
                    k = np.uint64(~asc)
                keys[s * n_f + f, c] = (k << np.uint64(32)) | np.uint64(c)


@numba.njit(cache=True, nogil=True)
def _scatter3(sorted_keys: np.ndarray, out: np.ndarray) -> None:
    """Ranks from sorted keys into out (S, C, F) with the competition tie rule; NaN -> 0."""
    n_s, n_c, n_f = out.shape
    for r in range(sorted_keys.shape[0]):
        s, f = r // n_f, r % n_f
        prev = np.uint64(0xFFFFFFFFFFFFFFFF)
        rank = 0
        for j in range(n_c):
            k = sorted_keys[r, j]
            hi = k >> np.uint64(32)
            c = k & np.uint64(0xFFFFFFFF)
            if hi == np.uint64(0xFFFFFFFF):
                out[s, c, f] = 0
            else:
                if hi != prev:
                    rank = j + 1
                    prev = hi
                out[s, c, f] = rank


KEY_BYTES = 8 * 2**20  # the packed keys are sorted in blocks of scenarios of about this size


def competition_rank(scores: np.ndarray, axis: int = 1) -> np.ndarray:
    """Ranks (int16) of float32 ``scores`` along ``axis`` (the city axis), 1 = highest. Scenarios go in
    blocks whose keys stay near the cache (and a chunk's keys never take 4x its scores' memory)."""
    s3 = np.ascontiguousarray(np.moveaxis(np.asarray(scores, dtype=np.float32), axis, 1))
    shape = s3.shape
    s3 = s3.reshape(shape[0], shape[1], -1)
    n_s, n_c, n_f = s3.shape
    out = np.empty(s3.shape, dtype=np.int16)
    step = max(1, min(n_s, KEY_BYTES // max(1, n_c * n_f * 8)))
    buf = np.empty((step * n_f, n_c), dtype=np.uint64)
    for a in range(0, n_s, step):
        b = min(n_s, a + step)
        keys = buf[: (b - a) * n_f]
        _pack(s3[a:b], keys)
        keys.sort(axis=1)
        _scatter3(keys, out[a:b])
    return np.moveaxis(out.reshape(shape), 1, axis)
