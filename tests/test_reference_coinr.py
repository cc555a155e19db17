"""Sanity checks of the plain COINr/ASEM reference implementation (tests/reference_coinr.py).

Published values used here (none of them computed by this project):

* COINr "Presenting Results" vignette (CRAN, ``build_example_coin()`` then
  ``get_results(coin, dset = "Aggregated", tab_type = "Aggs")``): the first six rows,
  rounded to 2 decimals (CHE 68.38, NLD 64.82, DNK 64.80, NOR 64.47, BEL 63.54, SWE 63.00,
  with their sub-index and pillar scores).
* Old COINr book (bluefoxr.github.io/COINrDoc, "Visualising results", COINr < 1.0,
  ``build_ASEM()``): top 10 of the Index, ranks 7-10 being AUT 61.90, LUX 61.58,
  DEU 60.75, MLT 60.36.
* COINr "Outlier Treatment" vignette: ``skew(c(1:10, 30, 100))`` = 3.063241 and
  ``kurt(...)`` = 9.741391; COINr ``winsorise()`` reference example: that vector
  becomes ``c(1:10, 30, 30)`` with ``nwin = 1``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_coinr as ref  # noqa: E402


@pytest.fixture(scope="module")
def asem():
    return ref.load_asem()


@pytest.fixture(scope="module")
def nominal(asem):
    idata, imeta = asem
    return ref.asem_pipeline(idata, imeta)


# --------------------------------------------------------------------------------------
# statistics helpers
# --------------------------------------------------------------------------------------


def test_reference_does_not_import_engine():
    text = (Path(__file__).resolve().parent / "reference_coinr.py").read_text()
    assert "import engine" not in text
    assert "from engine" not in text


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_skew_kurt_type2_equal_scipy_unbiased(seed):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(size=40)
    assert ref.skew_type2(x) == pytest.approx(stats.skew(x, bias=False), rel=1e-10)
    assert ref.kurt_type2(x) == pytest.approx(
        stats.kurtosis(x, fisher=True, bias=False), rel=1e-10)


def test_skew_kurt_on_asem_columns_equal_scipy(nominal):
    for code, col in nominal["denominated"].items():
        v = col.dropna().to_numpy()
        assert ref.skew_type2(col) == pytest.approx(stats.skew(v, bias=False), rel=1e-9), code
        assert ref.kurt_type2(col) == pytest.approx(
            stats.kurtosis(v, bias=False), rel=1e-9, abs=1e-12), code


def test_skew_kurt_published_coinr_example():
    x = list(range(1, 11)) + [30, 100]
    assert ref.skew_type2(x) == pytest.approx(3.063241, abs=5e-7)
    assert ref.kurt_type2(x) == pytest.approx(9.741391, abs=5e-7)


def test_check_fails_only_when_both_thresholds_reached(monkeypatch):
    cases = [
        ((2.0, 3.5), False),     # both exactly at threshold: fail (check uses strict <)
        ((-2.0, 3.5), False),    # |skew|
        ((1.999, 10.0), True),
        ((5.0, 3.499), True),
        ((float("nan"), 10.0), None),  # R: NA | FALSE -> NA
        ((float("nan"), 1.0), True),   # R: NA | TRUE  -> TRUE
    ]
    for (sk, kt), expected in cases:
        monkeypatch.setattr(ref, "skew_type2", lambda x, sk=sk: sk)
        monkeypatch.setattr(ref, "kurt_type2", lambda x, kt=kt: kt)
        assert ref.check_skew_kurt([0.0])[0] is expected, (sk, kt)


# --------------------------------------------------------------------------------------
# winsorisation / log rules
# --------------------------------------------------------------------------------------


def test_winsorise_published_example():
    x = list(range(1, 11)) + [30, 100]
    w = ref.winsorise(x, winmax=5)
    assert list(w["x"]) == list(range(1, 11)) + [30, 30]
    assert w["nwin"] == 1


def test_winsorise_replaces_all_tied_points_and_counts_them():
    x = list(range(1, 21)) + [1000, 1000]
    assert ref.check_skew_kurt(x)[0] is False
    w = ref.winsorise(x, winmax=5)
    # both tied maxima go to the next value in (20) in a single step
    assert list(w["x"][:20]) == list(range(1, 21))
    assert list(w["x"][20:]) == [20, 20]
    assert w["iterations"] == 1
    assert w["nwin"] == 2


def test_winsorise_count_is_points_held_at_extreme():
    # each step adds one more point to the plateau at the top: nwin grows 1, 2, 3
    x = list(range(1, 31)) + [200, 400, 800, 1600]
    assert ref.check_skew_kurt(x)[0] is False
    w = ref.winsorise(x, winmax=3)
    assert w["nwin"] == 3
    assert w["iterations"] == 3
    assert list(w["x"][-4:]) == [200, 200, 200, 200]


def test_winsorise_low_side_when_skew_negative():
    x = [-100.0] + list(range(1, 21))
    assert ref.check_skew_kurt(x)[0] is False
    w = ref.winsorise(x, winmax=5)
    assert w["x"][0] == 1.0
    assert w["imin"] == [0] and w["imax"] == [] and w["nwin"] == 1


def test_log_fallback_uses_original_values(asem):
    idata, imeta = asem
    out = ref.asem_pipeline(idata, imeta, winmax=0)
    info = out["treated_info"]
    logged = [c for c in info.index if info.loc[c, "log_transformed"]]
    assert len(logged) == 15
    for code in logged:
        x = out["screened"][code].to_numpy()
        lo, hi = x.min(), x.max()
        expected = np.log(x - lo + 0.01 * (hi - lo))
        np.testing.assert_allclose(out["treated"][code].to_numpy(), expected, rtol=1e-12)


def test_readme_15_fail_15_pass_after_winsorisation(nominal):
    info = nominal["treated_info"]
    summary = ref.treatment_log(info)
    assert summary["n_indicators"] == 49
    assert len(summary["failed_before"]) == 15
    assert summary["passed_after_winsorisation"] == summary["failed_before"]
    assert summary["log_transformed"] == []
    for code in summary["failed_before"]:
        assert 1 <= info.loc[code, "nwin"] <= 5
        assert info.loc[code, "Pass_final"] is True
    # every indicator that passed at first is untouched
    for code in info.index:
        if info.loc[code, "Pass0"] is True:
            pd.testing.assert_series_equal(nominal["treated"][code], nominal["screened"][code])


def test_winmax_none_means_no_treatment(asem):
    idata, imeta = asem
    out = ref.asem_pipeline(idata, imeta, winmax=None)
    pd.testing.assert_frame_equal(out["treated"], out["imputed"])


# --------------------------------------------------------------------------------------
# denominate / impute / screen
# --------------------------------------------------------------------------------------


def test_denomination(asem, nominal):
    idata, imeta = asem
    den = nominal["denominated"]
    i = idata.set_index("uCode")
    np.testing.assert_allclose(den["Flights"], i["Flights"] / i["Population"])
    np.testing.assert_allclose(den["LPI"], i["LPI"])


def test_group_mean_imputation(asem, nominal):
    idata, _ = asem
    den, imp = nominal["denominated"], nominal["imputed"]
    # 63 raw gaps, plus Elec and Gas of LAO whose Energy denominator is missing
    assert nominal["raw"].isna().sum().sum() == 63
    assert den.isna().sum().sum() == 65
    assert math.isnan(den.loc["LAO", "Elec"]) and math.isnan(den.loc["LAO", "Gas"])
    assert imp.isna().sum().sum() == 0
    groups = idata.set_index("uCode")["EurAsia_group"]
    for code in den.columns:
        for unit in den.index[den[code].isna()]:
            same = den.loc[groups == groups[unit], code].dropna()
            assert imp.loc[unit, code] == pytest.approx(same.mean(), rel=1e-12)


def test_screen_keeps_all_after_imputation_and_drops_five_without(asem, nominal):
    idata, imeta = asem
    assert nominal["screened"].shape == (51, 49)
    out = ref.asem_pipeline(idata, imeta, impute=False)
    removed = sorted(set(nominal["screened"].index) - set(out["screened"].index))
    assert removed == ["BGD", "BRN", "KHM", "LAO", "MMR"]


# --------------------------------------------------------------------------------------
# normalise / aggregate / ranks
# --------------------------------------------------------------------------------------


def test_minmax_in_0_100_and_directions(asem, nominal):
    _, imeta = asem
    nrm, trt = nominal["normalised"], nominal["treated"]
    for code in nrm.columns:
        assert nrm[code].min() == pytest.approx(0.0, abs=1e-12)
        assert nrm[code].max() == pytest.approx(100.0)
        direction = imeta.loc[imeta["iCode"] == code, "Direction"].iloc[0]
        best = trt[code].idxmax() if direction == 1 else trt[code].idxmin()
        assert nrm.loc[best, code] == pytest.approx(100.0)


def test_zscore_uses_sample_sd(asem):
    idata, imeta = asem
    out = ref.asem_pipeline(idata, imeta, normalise=("zscore", 10.0, 2.0))
    for code, col in out["normalised"].items():
        assert col.mean() == pytest.approx(10.0, abs=1e-9), code
        assert col.std(ddof=1) == pytest.approx(2.0, rel=1e-9), code


def test_index_in_0_100_and_level_structure(nominal):
    agg = nominal["aggregated"]
    assert list(agg.columns) == ["Physical", "ConEcFin", "Political", "Instit", "P2P",
                                 "Environ", "Social", "SusEcFin", "Conn", "Sust", "Index"]
    assert agg.notna().all().all()
    assert (agg["Index"] >= 0).all() and (agg["Index"] <= 100).all()
    np.testing.assert_allclose(agg["Index"], (agg["Conn"] + agg["Sust"]) / 2)
    conn = agg[["Physical", "ConEcFin", "Political", "Instit", "P2P"]].mean(axis=1)
    np.testing.assert_allclose(agg["Conn"], conn)


def test_amean_and_gmean_skip_missing_with_renormalised_weights():
    nan = float("nan")
    assert ref.a_amean([nan, 4.0, 16.0], [5.0, 1.0, 3.0]) == pytest.approx(13.0)
    assert math.isnan(ref.a_amean([nan, nan], [1.0, 1.0]))
    expected = math.exp((math.log(4.0) + 2 * math.log(16.0)) / 3)
    assert ref.a_gmean([nan, 4.0, 16.0], [1.0, 1.0, 2.0]) == pytest.approx(expected)
    assert math.isnan(ref.a_gmean([nan, nan], [1.0, 1.0]))
    with pytest.raises(ValueError):
        ref.a_gmean([0.0, 4.0], [1.0, 1.0])


def test_geometric_needs_positive_scores(asem):
    idata, imeta = asem
    with pytest.raises(ValueError):
        ref.asem_pipeline(idata, imeta, aggregation="geometric")
    out = ref.asem_pipeline(idata, imeta, aggregation="geometric",
                            normalise=("minmax", 1.0, 100.0))
    index = out["aggregated"]["Index"]
    assert (index >= 1).all() and (index <= 100).all()


def test_rank_ties_take_minimum():
    s = pd.Series([3.0, 1.0, 3.0, 2.0, float("nan"), 5.0], index=list("abcdef"))
    r = ref.ranks(s)
    assert r.tolist()[:4] == [2.0, 5.0, 2.0, 4.0]
    assert math.isnan(r["e"])
    assert r["f"] == 1.0


# --------------------------------------------------------------------------------------
# published COINr results
# --------------------------------------------------------------------------------------

# COINr vignette "Presenting Results" (CRAN build): head(get_results(coin, "Aggregated",
# tab_type = "Aggs")), values rounded to 2 decimals.
PUBLISHED_TOP6 = pd.DataFrame(
    [
        ["CHE", 1, 68.38, 62.79, 73.98, 63.41, 32.87, 74.78, 85.94, 56.93, 77.21, 87.85, 56.88],
        ["NLD", 2, 64.82, 61.94, 67.70, 64.87, 46.62, 84.55, 71.74, 41.92, 58.73, 86.58, 57.78],
        ["DNK", 3, 64.80, 57.10, 72.51, 50.52, 30.43, 78.13, 75.35, 51.04, 69.83, 86.40, 61.29],
        ["NOR", 4, 64.47, 57.44, 71.50, 58.18, 25.70, 80.03, 89.46, 33.80, 70.90, 87.00, 56.59],
        ["BEL", 5, 63.54, 63.99, 63.09, 71.97, 48.22, 80.84, 75.60, 43.32, 53.01, 86.17, 50.09],
        ["SWE", 6, 63.00, 53.87, 72.12, 51.51, 23.87, 80.98, 74.51, 38.50, 66.37, 87.74, 62.27],
    ],
    columns=["uCode", "Rank", "Index", "Conn", "Sust", "Physical", "ConEcFin", "Political",
             "Instit", "P2P", "Environ", "Social", "SusEcFin"],
).set_index("uCode")


def test_matches_published_coinr_vignette_top6(nominal):
    agg = nominal["aggregated"]
    rank = ref.ranks(agg["Index"])
    for unit, row in PUBLISHED_TOP6.iterrows():
        assert rank[unit] == row["Rank"], unit
        for col in PUBLISHED_TOP6.columns[1:]:
            assert agg.loc[unit, col] == pytest.approx(row[col], abs=0.005 + 1e-9), (unit, col)


def test_matches_published_coinrdoc_top10(nominal):
    # Older COINr (< 1.0) book, build_ASEM(); same methodology, same numbers.
    published = [("CHE", 68.38), ("NLD", 64.82), ("DNK", 64.80), ("NOR", 64.47),
                 ("BEL", 63.54), ("SWE", 63.00), ("AUT", 61.90), ("LUX", 61.58),
                 ("DEU", 60.75), ("MLT", 60.36)]
    index = nominal["aggregated"]["Index"]
    top10 = index.sort_values(ascending=False).head(10)
    assert list(top10.index) == [u for u, _ in published]
    for unit, value in published:
        assert index[unit] == pytest.approx(value, abs=0.005 + 1e-9), unit
