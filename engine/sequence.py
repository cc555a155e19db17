"""Scrambled Sobol' points, equal bit for bit to ``scipy.stats.qmc.Sobol(d, scramble=True, seed=seed)``
(the base sequence of SALib's Saltelli design and of rankstab's Monte Carlo designs), without importing
``scipy.stats``: its import builds the docstrings of every distribution, about a second of CPU that every
``rankstab run`` and every worker paid for a few hundred lines of arithmetic.

The sequence (Bratley and Fox 1988; Joe and Kuo's direction numbers, new-joe-kuo-6.21201, read from the
file SciPy ships; 30 bits):

* direction numbers ``v[d, j]`` of dimension ``d`` from its primitive polynomial and initial values;
* scrambling as SciPy's (Matoušek's linear matrix scramble, then a digital shift), with the random bits
  drawn in the same order from the same generator, so the same seed gives the same points;
* point ``k`` = shift XOR the direction numbers of the set bits of the Gray code of ``k``: any slice of
  the sequence is computed directly, with no state (which is how the tasks draw their own rows).

``tests/test_design.py`` checks it against SciPy for many dimensions, seeds, offsets and lengths.
"""

from __future__ import annotations

import importlib.util
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

BITS = 30  #: SciPy's default: at most 2**30 points


@cache
def _direction_numbers() -> tuple[np.ndarray, np.ndarray]:
    """(poly, vinit) of Joe and Kuo's table as SciPy ships it (dimension 1 included, as all ones)."""
    spec = importlib.util.find_spec("scipy")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "stats" / "_sobol_direction_numbers.npz"
    with np.load(path) as f:
        return f["poly"].astype(np.uint64), f["vinit"].astype(np.uint64)


def direction_numbers(d: int) -> np.ndarray:
    """The unscrambled direction numbers (d, BITS) as integers of BITS bits."""
    poly, vinit = _direction_numbers()
    if d > len(poly):
        raise ValueError(f"at most {len(poly)} dimensions")
    v = np.zeros((d, BITS), dtype=np.uint64)
    v[0] = 1
    for i in range(1, d):
        p = int(poly[i])
        m = p.bit_length() - 1  # the polynomial's degree
        v[i, :m] = vinit[i, :m]
        for j in range(m, BITS):
            new = int(v[i, j - m])
            for k in range(m):  # coefficient a_k of the polynomial times v[j - k - 1], shifted k + 1 places
                if (p >> (m - 1 - k)) & 1:
                    new ^= int(v[i, j - k - 1]) << (k + 1)
            v[i, j] = new
    return v << (BITS - 1 - np.arange(BITS, dtype=np.uint64))[None, :]


@lru_cache(maxsize=8)  # every chunk of a design asks for the same ones
def scrambled(d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(direction numbers after the linear matrix scramble (d, BITS), digital shift (d,)), drawn as SciPy
    draws them: the shift's bits first, then the lower-triangular matrices. Read-only (cached)."""
    rng = np.random.default_rng(seed)
    shift_bits = rng.integers(0, 2, size=(d, BITS), dtype=np.uint32).astype(np.uint64)
    shift = (shift_bits << np.arange(BITS, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    ltm = np.tril(rng.integers(0, 2, size=(d, BITS, BITS), dtype=np.uint32)).astype(np.uint64)
    ltm[:, np.arange(BITS), np.arange(BITS)] = 1
    v = direction_numbers(d)
    msb_first = np.arange(BITS - 1, -1, -1, dtype=np.uint64)  # column i of a matrix is bit BITS-1-i
    vbits = (v[:, :, None] >> msb_first[None, None, :]) & 1  # (d, j, i)
    out = np.einsum("dpi,dji->djp", ltm, vbits) & 1  # row p of the product is bit BITS-1-p
    v = (out << msb_first[None, None, :]).sum(axis=2, dtype=np.uint64)
    v.flags.writeable = shift.flags.writeable = False
    return v, shift


def sobol_points(d: int, n: int, seed: int, skip: int = 0) -> np.ndarray:
    """Points ``skip`` .. ``skip + n - 1`` of the scrambled sequence, (n, d) float64 in [0, 1)."""
    if skip + n > 2**BITS:
        raise ValueError(f"at most 2**{BITS} points")
    v, shift = scrambled(d, seed)
    k = np.arange(skip, skip + n, dtype=np.uint64)
    gray = k ^ (k >> np.uint64(1))
    q = np.broadcast_to(shift, (n, d)).copy()
    for b in range(int(gray.max()).bit_length() if n else 0):
        on = ((gray >> np.uint64(b)) & np.uint64(1)).astype(bool)
        q[on] ^= v[:, b]
    return q * (1.0 / 2**BITS)
