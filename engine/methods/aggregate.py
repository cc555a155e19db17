"""Aggregations: how the weighted children of a node combine, at the group, field and overall levels.

A compensatory aggregation is a weighted quasi-arithmetic mean ``inverse(sum_k w_k f(x_k))``: the
decorated function is the generator ``f``, ``inverse`` its inverse, and ``needs_positive`` says that f is
defined for positive values only. The kernel (engine/kernel.py) evaluates every registered mean; it has a
compiled fast path for arithmetic, geometric and harmonic. ``outranking = True`` marks Copeland, which the
kernel computes by pairwise comparisons of the cities. Add a mean with one decorated function in this file.

A scenario's method string is one name for every level (``geometric``) or one per level
(``geometric/arithmetic/arithmetic`` = group/field/overall), see ``levels``.
"""

from __future__ import annotations

import numpy as np

from .registry import Registry

AGGREGATIONS = Registry("aggregation")


@AGGREGATIONS.register("arithmetic", inverse=lambda v: v)
def arithmetic(x: np.ndarray) -> np.ndarray:
    """Weighted arithmetic mean: fully compensatory (a weakness is offset by a strength)."""
    return x


@AGGREGATIONS.register("geometric", inverse=np.exp, needs_positive=True)
def geometric(x: np.ndarray) -> np.ndarray:
    """Weighted geometric mean, exp(sum w log x): partly compensatory; needs positive values."""
    return np.log(x)


@AGGREGATIONS.register("harmonic", inverse=lambda v: 1.0 / v, needs_positive=True)
def harmonic(x: np.ndarray) -> np.ndarray:
    """Weighted harmonic mean, 1 / sum(w / x): less compensatory still; needs positive values."""
    return 1.0 / x


@AGGREGATIONS.register("copeland", outranking=True)
def copeland(x: np.ndarray) -> np.ndarray:
    """Copeland outranking, non-compensatory: city a beats b when the weight of the children where a > b
    (ties count half) exceeds one half, that is when it exceeds the weight where b > a (margins within 1e-9
    of the weight compared are ties); score = wins - losses among the cities."""
    return x


def levels(method: str) -> tuple[str, str, str]:
    """The (group, field, overall) methods of a method string: ``geometric`` (every level) or
    ``geometric/arithmetic/arithmetic``."""
    parts = method.split("/")
    return (parts[0],) * 3 if len(parts) == 1 else tuple(parts)  # type: ignore[return-value]
