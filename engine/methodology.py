"""Methodology options: parsing ``KEY=VALUE`` settings, and the data preparation they imply.

Option syntax (the same in ``rankstab score --set`` and in scenario specs)::

    normalisation = none | minmax[:lo,hi] | zscore[:mean,sd] | rank | distance_to_leader | goalposts[:qlo,qhi]
    aggregation   = arithmetic | geometric | harmonic | copeland
    outlier       = none | winsorise[:max_points]
    imputation    = none | group_mean[:column] | field_mean | city_mean
    denominate    = true | false
    weight_scheme = nominal | equal | pca | <a set named in the spec's [weight_sets]>
    exclude       = none | <indicator code>
    weight.<node> = <positive number>    (override one nominal weight)

Preparation order, per (field, indicator) column over cities: denominate -> impute (group/field
mean, on raw values) -> treat outliers -> orient (x * direction) and normalise -> city-mean imputation
(on normalised values).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from .errors import UserError, check_choice, did_you_mean

NORMALISATIONS = {"none": (), "minmax": (0.0, 100.0), "zscore": (0.0, 1.0), "rank": (),
                  "distance_to_leader": (), "goalposts": (5.0, 95.0)}
AGGREGATIONS = {"arithmetic": (), "geometric": (), "harmonic": (), "copeland": ()}
OUTLIERS = {"none": (), "winsorise": (5.0,)}
IMPUTATIONS = {"none": (), "group_mean": None, "field_mean": (), "city_mean": ()}
OPTION_KINDS = {"normalisation": NORMALISATIONS, "aggregation": AGGREGATIONS,
                "outlier": OUTLIERS, "imputation": IMPUTATIONS}
KEYS = (*OPTION_KINDS, "denominate", "weight_scheme", "exclude", "weights")


@dataclass(frozen=True, order=True)
class Option:
    """One methodological choice with its parameters, e.g. ``minmax:1,100``."""

    name: str
    params: tuple = ()

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(_fmt(p) for p in self.params)


def _fmt(p: float | str) -> str:
    return p if isinstance(p, str) else f"{p:g}"


def parse_option(kind: str, text: str | Option) -> Option:
    """Parse ``name[:p1,p2]`` for an option kind, filling default parameters."""
    if isinstance(text, Option):
        return text
    table = OPTION_KINDS[kind]
    name, _, rest = str(text).strip().partition(":")
    check_choice(name, table, kind)
    defaults = table[name]
    if name == "group_mean":
        return Option(name, (rest,) if rest else ())
    if not rest:
        return Option(name, tuple(defaults))
    try:
        params = tuple(float(p) for p in rest.split(","))
    except ValueError:
        raise UserError(f'{kind} "{text}": parameters must be numbers, e.g. minmax:1,100') from None
    if len(params) != len(defaults):
        raise UserError(f'{kind} "{text}" takes {len(defaults)} parameter(s) '
                        f"({name}:{','.join(_fmt(d) for d in defaults)}), not {len(params)}")
    if name in ("minmax", "goalposts") and not params[0] < params[1]:
        raise UserError(f'{kind} "{text}": the lower bound must be below the upper bound')
    if name == "zscore" and params[1] <= 0:
        raise UserError(f'{kind} "{text}": the standard deviation must be positive')
    if name == "winsorise" and (params[0] < 1 or params[0] != int(params[0])):
        raise UserError(f'{kind} "{text}": max_points must be a whole number >= 1')
    if name == "goalposts" and not (0 <= params[0] < params[1] <= 100):
        raise UserError(f'{kind} "{text}": goalposts are percentiles with 0 <= qlo < qhi <= 100')
    return Option(name, params)


@dataclass(frozen=True)
class Prep:
    """Everything that turns raw values into normalised indicator values."""

    normalisation: Option
    outlier: Option
    imputation: Option
    denominate: bool = True


@dataclass(frozen=True)
class Methodology:
    """One complete methodology (one scenario)."""

    normalisation: Option = Option("minmax", (0.0, 100.0))
    aggregation: Option = Option("arithmetic")
    outlier: Option = Option("none")
    imputation: Option = Option("none")
    denominate: bool = True
    weight_scheme: str = "nominal"
    exclude: str = "none"
    weights: dict = field(default_factory=dict)

    @property
    def prep(self) -> Prep:
        return Prep(self.normalisation, self.outlier, self.imputation, self.denominate)

    @classmethod
    def from_mapping(cls, mapping: dict, where: str = "nominal") -> Methodology:
        """Build from a TOML table / dict of settings; unknown keys are errors."""
        kw: dict = {}
        for key, value in mapping.items():
            if key not in KEYS:
                raise UserError(f'{where}: unknown key "{key}"{did_you_mean(key, KEYS)}; '
                                f"allowed: {', '.join(KEYS)}")
            if key in OPTION_KINDS:
                kw[key] = parse_option(key, value)
            elif key == "denominate":
                kw[key] = _bool(value, f"{where}.denominate")
            elif key == "weights":
                if not isinstance(value, dict):
                    raise UserError(f"{where}.weights must be a table of node = weight")
                kw[key] = {str(k): _weight(v, f"{where}.weights.{k}") for k, v in value.items()}
            else:
                kw[key] = str(value)
        return cls(**kw)

    def with_settings(self, settings: list[str]) -> Methodology:
        """Apply ``KEY=VALUE`` overrides (``weight.CODE=W`` sets one weight)."""
        m = self
        for item in settings:
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key:
                raise UserError(f'--set "{item}": write KEY=VALUE, e.g. --set normalisation=zscore:10,2')
            if key.startswith(("weight.", "weights.")):
                code = key.split(".", 1)[1]
                m = replace(m, weights={**m.weights, code: _weight(value, f"--set {key}")})
            else:
                m = _merge(m, key, value)
        return m

    def as_mapping(self) -> dict:
        out = {k: str(getattr(self, k)) for k in OPTION_KINDS}
        out.update(denominate=self.denominate, weight_scheme=self.weight_scheme, exclude=self.exclude)
        if self.weights:
            out["weights"] = dict(self.weights)
        return out


def _merge(base: Methodology, key: str, value: str) -> Methodology:
    return replace(base, **{key: getattr(Methodology.from_mapping({key: value}, where="--set"), key)})


def _bool(value, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1"):
        return True
    if str(value).lower() in ("false", "no", "0"):
        return False
    raise UserError(f'{what} is "{value}"; use true or false')


def _weight(value, what: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise UserError(f'{what} is "{value}", not a number; weights are positive numbers') from None
    if not np.isfinite(w) or w <= 0:
        raise UserError(f"{what} is {value}; weights must be positive (use exclude to drop an indicator)")
    return w


def nominal_methodology(ds: xr.Dataset, overrides: dict | None = None) -> Methodology:
    """The dataset's nominal methodology, optionally updated by a mapping."""
    from .data import nominal_settings

    mapping = {**nominal_settings(ds), **(overrides or {})}
    return Methodology.from_mapping(mapping, where=f"{ds.attrs.get('name', 'dataset')} [nominal]")


# ---------------------------------------------------------------------------------------- preparation

def prepare(ds: xr.Dataset, prep: Prep) -> np.ndarray:
    """Normalised indicator values (city, field, indicator), NaN where missing."""
    x = np.array(ds["value"].values, dtype=np.float64)
    if prep.denominate:
        x = denominate(ds, x)
    imp = prep.imputation
    if imp.name == "group_mean":
        x = impute_group_mean(x, _grouping(ds, imp))
    elif imp.name == "field_mean":
        x = impute_group_mean(x, np.zeros(x.shape[0], dtype=int))
    if prep.outlier.name == "winsorise":
        x = np.apply_along_axis(lambda c: treat_outliers(c, int(prep.outlier.params[0])), 0, x)
    x = normalise(x * ds["direction"].values[None, None, :], prep.normalisation)
    if imp.name == "city_mean":
        x = impute_city_mean(ds, x)
    return x


def denominate(ds: xr.Dataset, x: np.ndarray) -> np.ndarray:
    den = ds["indicator_denominator"].values
    if not (den != "").any():
        return x
    cols = list(ds["denominator"].values)
    out = x.copy()
    for i, d in enumerate(den):
        if d:
            out[:, :, i] = x[:, :, i] / ds["denominator_value"].values[:, cols.index(d)][:, None]
    return out


def _grouping(ds: xr.Dataset, imp: Option) -> np.ndarray:
    groupings = [g for g in ds.attrs.get("city_groupings", "").split(",") if g]
    col = imp.params[0] if imp.params else (groupings[0] if len(groupings) == 1 else None)
    if col is None:
        raise UserError(f"imputation group_mean needs a grouping column: group_mean:COLUMN with one of "
                        f"{', '.join(groupings) or '(none: add columns to the city table)'}")
    if col not in groupings:
        raise UserError(f'imputation group_mean: "{col}" is not a city grouping column'
                        f"{did_you_mean(col, groupings)}; choose one of: {', '.join(groupings) or '(none)'}")
    return np.unique(ds[col].values, return_inverse=True)[1]


def impute_group_mean(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Fill NaN with the mean of the same indicator over cities of the same group (NaN if none)."""
    out = x.copy()
    for g in np.unique(groups):
        rows = groups == g
        block = x[rows]
        with _quiet():
            mean = np.nanmean(block, axis=0)
        out[rows] = np.where(np.isnan(block), mean[None], block)
    return out


def impute_city_mean(ds: xr.Dataset, x: np.ndarray) -> np.ndarray:
    """Fill NaN with the mean of the city's available sibling indicators (same parent) in that field."""
    out = x.copy()
    parents = ds["indicator_parent"].values
    for p in np.unique(parents):
        cols = parents == p
        with _quiet():
            mean = np.nanmean(x[:, :, cols], axis=2)
        out[:, :, cols] = np.where(np.isnan(x[:, :, cols]), mean[:, :, None], x[:, :, cols])
    return out


@contextmanager
def _quiet():
    """Silence NumPy's warnings for all-NaN slices and 0/0 that the code handles explicitly."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


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


def normalise(x: np.ndarray, opt: Option) -> np.ndarray:
    """Normalise every (field, indicator) column over cities (axis 0); values already oriented."""
    name, p = opt.name, opt.params
    with _quiet():
        if name == "none":
            return x.copy()
        if name == "minmax":
            lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
            span = hi - lo
            u = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.5)  # constant -> midpoint
            return np.where(np.isnan(x), np.nan, p[0] + u * (p[1] - p[0]))
        if name == "zscore":
            mean = np.nanmean(x, axis=0)
            sd = np.nanstd(x, axis=0, ddof=1)
            z = np.where(sd > 0, (x - mean) / np.where(sd > 0, sd, 1.0), 0.0)  # constant -> the mean
            return np.where(np.isnan(x), np.nan, p[0] + z * p[1])
        if name == "rank":
            return _percentile_rank(x)
        if name == "distance_to_leader":
            # positive data: x / max * 100; oriented negative data (x = -raw): min raw / raw * 100
            best = np.nanmax(x, axis=0)
            return np.where(best > 0, x / np.where(best > 0, best, 1.0), best / x) * 100.0
        if name == "goalposts":
            lo = np.nanpercentile(x, p[0], axis=0)
            hi = np.nanpercentile(x, p[1], axis=0)
            span = hi - lo
            u = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.5)
            return np.where(np.isnan(x), np.nan, np.clip(u, 0.0, 1.0) * 100.0)
    raise AssertionError(name)


def _percentile_rank(x: np.ndarray) -> np.ndarray:
    """100 * (average rank among available values) / (number available); in (0, 100]."""
    r = average_rank(x)
    n = np.sum(~np.isnan(x), axis=0)
    return np.where(np.isnan(x), np.nan, r / np.maximum(n, 1) * 100.0)


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
