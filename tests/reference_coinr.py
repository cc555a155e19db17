"""Plain, independent reference implementation of COINr's ASEM example pipeline.

This module re-implements, step by step, what COINr 1.1.14's ``build_example_coin()``
does to the ASEM example data (see ``tests/reference/asem/README.md``).  It is meant
for tests only: it is written for clarity (one column at a time, explicit loops), not
for speed, and it deliberately does NOT import the project package ``engine``.

The rules below were transcribed from COINr's R source (GitHub ``bluefoxr/COINr``):

* ``R/examples.R`` -- ``build_example_coin()``::

      Denominate(coin, dset = "Raw")
      Impute(coin, dset = "Denominated", f_i = "i_mean_grp", use_group = "EurAsia_group")
      Screen(coin, dset = "Imputed", dat_thresh = 0.9, unit_screen = "byNA")
      Treat(coin, dset = "Screened", global_specs = list(f1_para = list(winmax = 5)))
      Normalise(coin, dset = "Treated", global_specs = list(f_n = "n_minmax",
                                                           f_n_para = list(c(0,100))))
      Aggregate(coin, dset = "Normalised", f_ag = "a_amean")

* ``R/denominate.R``: ``x[[iCode]] / denoms[[Denominator]]`` (ScaleFactor 1).
* ``R/impute.R``: ``i_mean_grp`` -- NAs replaced by the mean of the non-NA values of the
  same group (``split(x, f)`` then ``i_mean`` per group).
* ``R/screen_units.R``: a unit is kept when ``Dat_Avail >= dat_thresh``
  (it is removed when ``Dat_Avail < dat_thresh``), ``Dat_Avail = 1 - n_NA / n_ind``.
* ``R/treat.R``:
    - ``skew``: ``y <- sqrt(n)*sum(x^3)/(sum(x^2)^(3/2)); y*sqrt(n*(n-1))/(n-2)``
      (e1071 type 2, on de-meaned x, NAs removed).
    - ``kurt``: ``r <- n*sum(x^4)/(sum(x^2)^2); ((n+1)*(r-3)+6)*(n-1)/((n-2)*(n-3))``
      (e1071 type 2 = *excess* kurtosis, equal to scipy ``kurtosis(bias=False)``).
    - ``check_SkewKurt``: ``Pass <- (abs(sk) < skew_thresh) | (kt < kurt_thresh)``,
      i.e. it FAILS only when ``|skew| >= 2`` AND ``kurt >= 3.5``.
    - ``winsorise``: while (not passing and ``nwin < winmax``): if ``skew >= 0``
      ``imax <- which(x == max(x)); x[imax] <- max(x[-imax])`` else the same at the
      minimum; then ``nwin <- length(imax) + length(imin)`` (the number of points
      currently sitting at the last winsorised extreme(s)); then re-check.
    - ``Treat.numeric``: if the winsorised vector still fails, ``log_CT`` is applied
      to the ORIGINAL vector (``combine_treat = FALSE``):
      ``log(x - min(x) + 0.01*(max(x) - min(x)))``; the result is kept whether or
      not it passes.
* ``R/normalise.R``: ``x <- x*direction`` then ``n_minmax``:
  ``(x-minx)/(maxx-minx)*(u-l) + l``; or ``n_zscore``:
  ``(x-mean(x))/sd(x)*m_sd[2] + m_sd[1]`` (``sd`` is the n-1 sample sd).
* ``R/aggregate.R``: level by level, each parent is the ``f_ag`` of its children using the
  iMeta weights. ``a_amean``: NAs (and their weights) dropped, ``w <- w/sum(w)``,
  ``sum(w*x)``; NA if nothing is left. ``a_gmean``: error if any non-NA ``x <= 0``;
  ``w[is.na(x)] <- NA; exp(sum(w*log(x), na.rm=TRUE)/sum(w, na.rm=TRUE))``; NA if all
  x are NA.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

ASEM_DIR = Path(__file__).resolve().parent / "reference" / "asem"

SKEW_THRESH = 2.0
KURT_THRESH = 3.5


# --------------------------------------------------------------------------------------
# data loading
# --------------------------------------------------------------------------------------


def load_asem(directory: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read iData.csv and iMeta.csv of the ASEM example (returned unchanged)."""
    directory = ASEM_DIR if directory is None else Path(directory)
    idata = pd.read_csv(directory / "iData.csv")
    imeta = pd.read_csv(directory / "iMeta.csv")
    return idata, imeta


def indicator_codes(imeta: pd.DataFrame) -> list[str]:
    """Level-1 indicator codes, in iMeta order."""
    codes = []
    for _, row in imeta.iterrows():
        if row["Type"] == "Indicator":
            codes.append(str(row["iCode"]))
    return codes


# --------------------------------------------------------------------------------------
# statistics (COINr R/treat.R: skew, kurt, check_SkewKurt)
# --------------------------------------------------------------------------------------


def _non_missing(x) -> list[float]:
    values = []
    for v in np.asarray(x, dtype=float):
        if not math.isnan(v):
            values.append(float(v))
    return values


def skew_type2(x) -> float:
    """Sample skewness, e1071 type 2 (as COINr ``skew(x, na.rm = TRUE)``).

    NaN if fewer than 3 non-missing values (COINr's newest source returns NA there).
    """
    v = _non_missing(x)
    n = len(v)
    if n < 3:
        return float("nan")
    mean = sum(v) / n
    d = [a - mean for a in v]
    s2 = sum(a * a for a in d)
    s3 = sum(a * a * a for a in d)
    if s2 == 0:
        return float("nan")
    y = math.sqrt(n) * s3 / (s2 ** 1.5)
    y = y * math.sqrt(n * (n - 1)) / (n - 2)
    return y


def kurt_type2(x) -> float:
    """Sample EXCESS kurtosis, e1071 type 2 (as COINr ``kurt(x, na.rm = TRUE)``).

    NaN if fewer than 4 non-missing values.
    """
    v = _non_missing(x)
    n = len(v)
    if n < 4:
        return float("nan")
    mean = sum(v) / n
    d = [a - mean for a in v]
    s2 = sum(a * a for a in d)
    s4 = sum(a ** 4 for a in d)
    if s2 == 0:
        return float("nan")
    r = n * s4 / (s2 * s2)
    y = ((n + 1) * (r - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))
    return y


def check_skew_kurt(x, skew_thresh: float = SKEW_THRESH, kurt_thresh: float = KURT_THRESH):
    """COINr ``check_SkewKurt``: ``Pass = (|skew| < skew_thresh) | (kurt < kurt_thresh)``.

    Returns ``(passed, skew, kurt)``. ``passed`` follows R's three-valued ``|``: True if
    either comparison is True, None (R's NA) if none is True and one is NA, else False.
    """
    sk = skew_type2(x)
    kt = kurt_type2(x)
    skew_ok = None if math.isnan(sk) else abs(sk) < skew_thresh
    kurt_ok = None if math.isnan(kt) else kt < kurt_thresh
    if skew_ok is True or kurt_ok is True:
        passed = True
    elif skew_ok is None or kurt_ok is None:
        passed = None
    else:
        passed = False
    return passed, sk, kt


# --------------------------------------------------------------------------------------
# outlier treatment (COINr R/treat.R: winsorise, log_CT, Treat.numeric)
# --------------------------------------------------------------------------------------


def winsorise(x, winmax: int | None = 5, skew_thresh: float = SKEW_THRESH,
              kurt_thresh: float = KURT_THRESH) -> dict:
    """COINr ``winsorise(x, na.rm = TRUE, winmax, skew_thresh, kurt_thresh)``.

    Here ``winmax=None`` means "no limit", as in COINr's ``winsorise`` itself.
    Returns dict with ``x`` (new array), ``nwin`` (COINr's count), ``imax``/``imin``
    (positions last winsorised at the top / bottom), ``iterations``.
    """
    x = np.array(x, dtype=float)  # copy
    passing, _, _ = check_skew_kurt(x, skew_thresh, kurt_thresh)
    nwin = 0
    imax: list[int] = []
    imin: list[int] = []
    iterations = 0

    def below_winmax() -> bool:
        if winmax is None:
            return True
        return nwin < winmax

    if passing is False:
        go_on = below_winmax()
        while passing is False and go_on:
            iterations += 1
            if skew_type2(x) >= 0:
                # high outliers: every point equal to the max gets the next value below
                top = np.nanmax(x)
                imax = [i for i in range(len(x)) if x[i] == top]
                others = [x[i] for i in range(len(x)) if i not in imax and not math.isnan(x[i])]
                new_value = max(others)
                for i in imax:
                    x[i] = new_value
            else:
                bottom = np.nanmin(x)
                imin = [i for i in range(len(x)) if x[i] == bottom]
                others = [x[i] for i in range(len(x)) if i not in imin and not math.isnan(x[i])]
                new_value = min(others)
                for i in imin:
                    x[i] = new_value
            # COINr: nwin <- sum(length(imax) + length(imin))
            nwin = len(imax) + len(imin)
            go_on = below_winmax()
            passing, _, _ = check_skew_kurt(x, skew_thresh, kurt_thresh)

    return {"x": x, "nwin": nwin, "imax": imax, "imin": imin, "iterations": iterations}


def log_ct(x) -> np.ndarray:
    """COINr ``log_CT(x, na.rm = TRUE)``: ``log(x - min(x) + 0.01*(max(x) - min(x)))``."""
    x = np.array(x, dtype=float)
    lo = np.nanmin(x)
    hi = np.nanmax(x)
    out = np.empty_like(x)
    for i in range(len(x)):
        out[i] = math.log(x[i] - lo + 0.01 * (hi - lo)) if not math.isnan(x[i]) else math.nan
    return out


def treat_column(x, winmax: int | None = 5, skew_thresh: float = SKEW_THRESH,
                 kurt_thresh: float = KURT_THRESH) -> tuple[np.ndarray, dict]:
    """COINr ``Treat.numeric`` with f1 = winsorise, f2 = log_CT, f_pass = check_SkewKurt.

    ``winmax`` is the maximum number of winsorised points (must be an int here).
    Returns ``(treated_x, info)``.
    """
    original = np.array(x, dtype=float)
    info: dict = {}
    pass0, sk0, kt0 = check_skew_kurt(original, skew_thresh, kurt_thresh)
    info.update(Pass0=pass0, Skew0=sk0, Kurt0=kt0)
    info.update(winsorised=False, nwin=0, n_changed_high=0, n_changed_low=0,
                Pass1=None, Skew1=math.nan, Kurt1=math.nan,
                log_transformed=False, Pass2=None, Skew2=math.nan, Kurt2=math.nan)

    if pass0 is None:  # COINr: "f_pass has returned NA. Returning untreated vector."
        info["Pass_final"] = None
        return original.copy(), info
    if pass0:
        info["Pass_final"] = True
        return original.copy(), info

    # treatment 1: winsorisation
    w = winsorise(original, winmax=winmax, skew_thresh=skew_thresh, kurt_thresh=kurt_thresh)
    x1 = w["x"]
    n_high = 0
    n_low = 0
    for a, b in zip(original, x1, strict=True):
        if not math.isnan(a) and a != b:
            if b < a:
                n_high += 1
            else:
                n_low += 1
    pass1, sk1, kt1 = check_skew_kurt(x1, skew_thresh, kurt_thresh)
    info.update(winsorised=w["iterations"] > 0, nwin=w["nwin"], n_changed_high=n_high,
                n_changed_low=n_low, Pass1=pass1, Skew1=sk1, Kurt1=kt1)
    if pass1 is None:
        info["Pass_final"] = None
        return original.copy(), info
    if pass1:
        info["Pass_final"] = True
        return x1, info

    # treatment 2: log transform of the ORIGINAL values (combine_treat = FALSE)
    x2 = log_ct(original)
    pass2, sk2, kt2 = check_skew_kurt(x2, skew_thresh, kurt_thresh)
    info.update(winsorised=False, log_transformed=True, Pass2=pass2, Skew2=sk2, Kurt2=kt2)
    info["Pass_final"] = pass2
    return x2, info


def treatment_log(treated_info: pd.DataFrame) -> dict:
    """Small summary of a ``treated_info`` table (as returned by ``asem_pipeline``)."""
    failed_before = [c for c in treated_info.index if treated_info.loc[c, "Pass0"] is False]
    winsorised_ok = [c for c in failed_before if treated_info.loc[c, "Pass1"] is True]
    logged = [c for c in treated_info.index if bool(treated_info.loc[c, "log_transformed"])]
    return {
        "n_indicators": len(treated_info),
        "failed_before": failed_before,
        "passed_after_winsorisation": winsorised_ok,
        "log_transformed": logged,
    }


# --------------------------------------------------------------------------------------
# pipeline steps
# --------------------------------------------------------------------------------------


def denominate_data(idata: pd.DataFrame, imeta: pd.DataFrame) -> pd.DataFrame:
    """Indicators (indexed by uCode); those with an iMeta Denominator are divided by it."""
    codes = indicator_codes(imeta)
    out = pd.DataFrame(index=pd.Index(idata["uCode"].astype(str).tolist(), name="uCode"))
    for code in codes:
        values = np.asarray(idata[code], dtype=float)
        denom_name = imeta.loc[imeta["iCode"] == code, "Denominator"].iloc[0]
        if isinstance(denom_name, str) and denom_name != "":
            denom = np.asarray(idata[denom_name], dtype=float)
            values = values / denom
        out[code] = values
    return out


def raw_indicators(idata: pd.DataFrame, imeta: pd.DataFrame) -> pd.DataFrame:
    codes = indicator_codes(imeta)
    out = pd.DataFrame(index=pd.Index(idata["uCode"].astype(str).tolist(), name="uCode"))
    for code in codes:
        out[code] = np.asarray(idata[code], dtype=float)
    return out


def impute_group_mean(data: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """COINr ``i_mean_grp``, column by column: NA -> mean of non-NA values of its group."""
    out = data.copy()
    group_of = [str(g) for g in groups]
    for code in data.columns:
        col = np.asarray(data[code], dtype=float).copy()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for g, v in zip(group_of, col, strict=True):
            if not math.isnan(v):
                sums[g] = sums.get(g, 0.0) + v
                counts[g] = counts.get(g, 0) + 1
        for i in range(len(col)):
            if math.isnan(col[i]):
                g = group_of[i]
                col[i] = sums[g] / counts[g] if counts.get(g, 0) > 0 else math.nan
        out[code] = col
    return out


def screen_units(data: pd.DataFrame, dat_thresh: float | None = 0.9) -> pd.DataFrame:
    """COINr ``Screen(unit_screen = "byNA")``: keep units with availability >= dat_thresh."""
    if dat_thresh is None:
        return data.copy()
    keep = []
    n_ind = data.shape[1]
    for unit in data.index:
        n_missing = int(data.loc[unit].isna().sum())
        availability = 1 - n_missing / n_ind
        keep.append(not (availability < dat_thresh))
    return data.loc[keep].copy()


def treat(data: pd.DataFrame, winmax: int | None = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply ``treat_column`` to every indicator. ``winmax=None``: no treatment at all."""
    out = data.copy()
    rows = []
    for code in data.columns:
        if winmax is None:
            passed, sk, kt = check_skew_kurt(data[code])
            info = {"Pass0": passed, "Skew0": sk, "Kurt0": kt, "winsorised": False, "nwin": 0,
                    "n_changed_high": 0, "n_changed_low": 0, "Pass1": None,
                    "Skew1": math.nan, "Kurt1": math.nan, "log_transformed": False,
                    "Pass2": None, "Skew2": math.nan, "Kurt2": math.nan, "Pass_final": passed}
        else:
            new_values, info = treat_column(data[code].to_numpy(dtype=float), winmax=winmax)
            out[code] = new_values
        info = dict(info)
        info["iCode"] = code
        rows.append(info)
    table = pd.DataFrame(rows).set_index("iCode")
    for col in ("Pass0", "Pass1", "Pass2", "Pass_final"):
        table[col] = table[col].astype(object)
    return out, table


def normalise_data(data: pd.DataFrame, imeta: pd.DataFrame,
              spec: tuple = ("minmax", 0.0, 100.0)) -> pd.DataFrame:
    """COINr ``Normalise``: multiply by Direction, then n_minmax or n_zscore per column."""
    kind = spec[0]
    out = data.copy()
    for code in data.columns:
        direction = float(imeta.loc[imeta["iCode"] == code, "Direction"].iloc[0])
        if direction not in (-1.0, 1.0):
            raise ValueError(f"direction must be -1 or 1 for {code}")
        x = np.asarray(data[code], dtype=float) * direction
        present = [v for v in x if not math.isnan(v)]
        if kind == "minmax":
            lo, hi = float(spec[1]), float(spec[2])
            mn = min(present)
            mx = max(present)
            y = (x - mn) / (mx - mn) * (hi - lo) + lo
        elif kind == "zscore":
            target_mean, target_sd = float(spec[1]), float(spec[2])
            n = len(present)
            mean = sum(present) / n
            sd = math.sqrt(sum((v - mean) ** 2 for v in present) / (n - 1))
            y = (x - mean) / sd * target_sd + target_mean
        else:
            raise ValueError(f"unknown normalisation {kind!r}")
        out[code] = y
    return out


def a_amean(x, w) -> float:
    """COINr ``a_amean``: drop NAs with their weights, rescale weights to sum 1."""
    xs = []
    ws = []
    for xi, wi in zip(x, w, strict=True):
        if not math.isnan(xi):
            xs.append(float(xi))
            ws.append(float(wi))
    if len(xs) == 0:
        return math.nan
    total = sum(ws)
    return sum((wi / total) * xi for xi, wi in zip(xs, ws, strict=True))


def a_gmean(x, w) -> float:
    """COINr ``a_gmean``: NAs skipped (their weights too); error on any x <= 0."""
    if all(math.isnan(xi) for xi in x):
        return math.nan
    for xi in x:
        if not math.isnan(xi) and xi <= 0:
            raise ValueError("Negative or zero values found when applying geometric mean.")
    num = 0.0
    den = 0.0
    for xi, wi in zip(x, w, strict=True):
        if not math.isnan(xi):
            num += wi * math.log(xi)
            den += wi
    return math.exp(num / den)


def aggregate(normalised: pd.DataFrame, imeta: pd.DataFrame,
              method: str = "arithmetic") -> pd.DataFrame:
    """Aggregate level by level (Level 1 -> 2 -> 3 -> 4) with iMeta Weight and Parent.

    Returns only the aggregate columns (pillars, sub-indices, Index), in iMeta order.
    """
    if method == "arithmetic":
        f = a_amean
    elif method == "geometric":
        f = a_gmean
    else:
        raise ValueError(f"unknown aggregation {method!r}")
    meta = imeta[imeta["Level"].notna()].copy()
    meta["Level"] = meta["Level"].astype(int)
    max_level = int(meta["Level"].max())

    values: dict[str, np.ndarray] = {}
    for code in normalised.columns:
        values[code] = np.asarray(normalised[code], dtype=float)
    units = list(normalised.index)

    aggregate_order: list[str] = []
    for level in range(2, max_level + 1):
        children_meta = meta[meta["Level"] == level - 1]
        parents = []
        for p in children_meta["Parent"]:
            if isinstance(p, str) and p not in parents:
                parents.append(p)
        for parent in parents:
            kids = children_meta[children_meta["Parent"] == parent]
            kid_codes = [str(c) for c in kids["iCode"]]
            kid_weights = [float(wt) for wt in kids["Weight"]]
            result = np.empty(len(units))
            for u in range(len(units)):
                row = [values[c][u] for c in kid_codes]
                result[u] = f(row, kid_weights)
            values[parent] = result
            aggregate_order.append(parent)

    out = pd.DataFrame(index=normalised.index)
    for code in aggregate_order:
        out[code] = values[code]
    return out


def ranks(series: pd.Series) -> pd.Series:
    """Rank 1 = highest value; ties get the minimum rank; NaN stays NaN."""
    vals = list(series.to_numpy(dtype=float))
    out = []
    for v in vals:
        if math.isnan(v):
            out.append(math.nan)
        else:
            out.append(1 + sum(1 for other in vals if not math.isnan(other) and other > v))
    return pd.Series(out, index=series.index, name=series.name, dtype=float)


# --------------------------------------------------------------------------------------
# full pipeline
# --------------------------------------------------------------------------------------


def asem_pipeline(idata: pd.DataFrame, imeta: pd.DataFrame, *, winmax: int | None = 5,
                  normalise: tuple = ("minmax", 0.0, 100.0),
                  aggregation: str = "arithmetic",
                  impute: bool = True, denominate: bool = True,
                  screen_thresh: float | None = 0.9) -> dict[str, pd.DataFrame]:
    """Reproduce COINr's build_example_coin() on ASEM-like data.

    Parameters mirror the knobs of the COINr build:
      winmax       -- max winsorised points (COINr f1_para winmax); ``None`` = no outlier
                      treatment at all (NOT COINr's "no limit").
      normalise    -- ("minmax", l, u) or ("zscore", mean, sd).
      aggregation  -- "arithmetic" (a_amean) or "geometric" (a_gmean; needs x > 0).
      impute       -- EurAsia_group mean imputation on/off (COINr Impute(disable=...)).
      denominate   -- divide by iMeta Denominator on/off.
      screen_thresh-- COINr Screen(dat_thresh = 0.9, unit_screen = "byNA") on the imputed
                      data; after imputation nothing is removed, but with impute=False
                      units with < 90 % data ARE removed (as COINr would). None = skip.

    Returns a dict of DataFrames indexed by uCode: raw, denominated, imputed, screened,
    treated, normalised, aggregated (aggregates only), plus treated_info (by iCode).
    """
    raw = raw_indicators(idata, imeta)
    if denominate:
        den = denominate_data(idata, imeta)
    else:
        den = raw.copy()

    if impute:
        groups = pd.Series(idata["EurAsia_group"].astype(str).tolist(), index=den.index)
        imp = impute_group_mean(den, groups)
    else:
        imp = den.copy()

    scr = screen_units(imp, screen_thresh)
    trt, info = treat(scr, winmax=winmax)
    nrm = normalise_data(trt, imeta, normalise)
    agg = aggregate(nrm, imeta, aggregation)
    return {
        "raw": raw,
        "denominated": den,
        "imputed": imp,
        "screened": scr,
        "treated": trt,
        "treated_info": info,
        "normalised": nrm,
        "aggregated": agg,
    }
