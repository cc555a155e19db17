"""Outlier treatments of the raw (denominated, imputed) values, each indicator column over cities.

Add one with a decorated function in this file taking the (city, field, indicator) array; its
keyword-only parameters are the ``name:p`` parameters of ``--set outlier=...`` and of specs.
"""

from __future__ import annotations

import numpy as np

from .registry import Registry

OUTLIERS = Registry("outlier")


@OUTLIERS.register("none")
def none(x: np.ndarray) -> np.ndarray:
    """No treatment."""
    return x


@OUTLIERS.register("winsorise", check=lambda max_points: None if max_points >= 1 and max_points.is_integer()
                   else "max_points must be a whole number >= 1")
def winsorise(x: np.ndarray, *, max_points: float = 5) -> np.ndarray:
    """COINr's treatment: winsorise up to max_points values per column, else log-transform it
    (see ``treat_outliers``)."""
    return np.apply_along_axis(lambda c: treat_outliers(c, int(max_points)), 0, x)


def skew(x: np.ndarray) -> float:
    """Sample skewness, e1071 type 2 (as COINr)."""
    n = x.size
    d = x - x.mean()
    return float(np.sqrt(n) * np.sum(d**3) / np.sum(d**2) ** 1.5 * np.sqrt(n * (n - 1)) / (n - 2))


def kurt(x: np.ndarray) -> float:
    """Sample excess kurtosis, e1071 type 2 (as COINr)."""
    n = x.size
    d = x - x.mean()
    r = n * np.sum(d**4) / np.sum(d**2) ** 2
    return float(((n + 1) * (r - 3) + 6) * (n - 1) / ((n - 2) * (n - 3)))


def passes(x: np.ndarray, skew_thresh: float = 2.0, kurt_thresh: float = 3.5) -> bool:
    """COINr's check_SkewKurt: pass when |skew| < 2 or kurtosis < 3.5 (too few points always pass)."""
    if x.size < 4 or np.all(x == x[0]):
        return True
    return abs(skew(x)) < skew_thresh or kurt(x) < kurt_thresh


def treat_outliers(col: np.ndarray, max_points: int) -> np.ndarray:
    """COINr's two-stage treatment of one indicator column (NaN kept): winsorise up to ``max_points``
    one side at a time; if it still fails, log(x - min + 0.01 (max - min)) of the original values."""
    ok = ~np.isnan(col)
    x = col[ok].copy()
    if passes(x):
        return col
    n_hi = n_lo = 0  # COINr counts the points held at the last winsorised extreme of each side
    while not passes(x) and n_hi + n_lo < max_points:
        if skew(x) >= 0:
            at = x == x.max()
            x[at] = x[~at].max()
            n_hi = int(at.sum())
        else:
            at = x == x.min()
            x[at] = x[~at].min()
            n_lo = int(at.sum())
    if not passes(x):
        orig = col[ok]
        x = np.log(orig - orig.min() + 0.01 * (orig.max() - orig.min()))
    out = col.copy()
    out[ok] = x
    return out
