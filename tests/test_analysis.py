"""`rankstab analyze` against independent references: numpy's percentiles on the stored ranks, SALib's
sobol.analyze on the same outputs, and the analytic indices of simple models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from SALib.analyze import sobol as salib_sobol
from scipy.stats import kendalltau, spearmanr

import engine
from engine.analysis import hist_quantile

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sobol_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("an")
    spec = tmp / "cn36.toml"
    text = (ROOT / "scenarios" / "cn36-2019.toml").read_text().replace("n = 4096", "n = 256")
    spec.write_text(text.replace("second_order = true", "second_order = true\nsecond_order_conf = true"))
    out = tmp / "cn36.zarr"
    engine.run(spec, out=out, synchronous=True)
    return out, engine.analyze(out)


@pytest.fixture(scope="module")
def mc_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mc")
    text = (ROOT / "scenarios" / "gtii-2019.toml").read_text()
    text = text.replace('kind = "sobol"', 'kind = "montecarlo"').replace("n = 16384", "n = 700")
    text = text.replace("second_order = true", "second_order = false").replace("chunk = 0 ", "chunk = 128 ")
    spec = tmp / "mc.toml"
    spec.write_text(text)
    out = tmp / "mc.zarr"
    engine.run(spec, out=out, synchronous=True)
    return out, engine.analyze(out)


def test_rank_statistics_equal_numpy_on_stored_ranks(mc_run):
    out, res = mc_run
    ranks = xr.open_zarr(out)["rank"].values
    for q, name in ((5, "rank_q05"), (50, "rank_median"), (95, "rank_q95")):
        np.testing.assert_allclose(res[name].values, np.percentile(ranks, q, axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["rank_mean"].values, ranks.mean(axis=0))
    nominal = xr.open_zarr(out)["nominal_rank"].values
    np.testing.assert_allclose(res["rank_abs_shift"].values, np.abs(ranks - nominal).mean(axis=0))
    np.testing.assert_allclose(res["prob_top"].sel(top=3).values, (ranks <= 3).mean(axis=0))
    # R-bar is stored per scenario as float32
    np.testing.assert_allclose(res["rbar_mean"].values, np.abs(ranks - nominal).mean(axis=(0, 1)), rtol=1e-5)
    prob = res["rank_prob"].values
    np.testing.assert_allclose(prob.sum(axis=-1), 1.0)
    np.testing.assert_allclose(prob[3, 2, 4], (ranks[:, 3, 2] == 5).mean())


def test_correlations_equal_scipy(mc_run):
    out, res = mc_run
    store = xr.open_zarr(out)
    ranks, nominal = store["rank"].values, store["nominal_rank"].values
    f = 7  # overall
    sp = [spearmanr(ranks[s, :, f], nominal[:, f])[0] for s in range(0, 700, 50)]
    kt = [kendalltau(ranks[s, :, f], nominal[:, f])[0] for s in range(0, 700, 50)]
    from engine.stats.summary import correlations

    spearman, kendall = correlations(ranks[::50], nominal)
    np.testing.assert_allclose(kendall[:, f], kt, atol=1e-12)  # tau-b, as scipy
    np.testing.assert_allclose(spearman[:, f], sp, atol=1e-12)  # average ranks for ties, as scipy
    all_sp, all_kt = correlations(ranks, nominal)
    np.testing.assert_allclose(res["kendall_mean"].values, all_kt.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(res["spearman_q05"].values, np.percentile(all_sp, 5, axis=0), rtol=1e-12)
    assert -1 <= res["spearman_mean"].sel(field="overall") <= 1


def test_sobol_point_estimates_equal_salib(sobol_run):
    out, res = sobol_run
    store = xr.open_zarr(out)
    names = list(store["factor"].values)
    problem = {"num_vars": len(names), "names": names, "bounds": [[0, 1]] * len(names)}
    rng = np.random.default_rng(0)
    for target in ("rank", "score"):
        y = store[target].values
        for c, f in zip(rng.integers(0, 36, 6), rng.integers(0, 2, 6), strict=True):
            yy = y[:, c, f].astype(np.float64)
            if yy[::12].std() == 0:
                continue
            ref = salib_sobol.analyze(problem, yy, calc_second_order=True, print_to_console=False, seed=1)
            got = res.sel(target=target).isel(city=c, field=f)
            np.testing.assert_allclose(got["S1"].values, ref["S1"], atol=1e-10)
            np.testing.assert_allclose(got["ST"].values, ref["ST"], atol=1e-10)
            np.testing.assert_allclose(np.triu(got["S2"].values, 1), np.nan_to_num(np.triu(ref["S2"], 1)),
                                       atol=1e-10)
            # asked for: S2's bootstrap intervals, on SALib's resamples (the store's bootstrap seed is 1)
            np.testing.assert_allclose(np.triu(got["S2_conf"].values, 1), np.nan_to_num(np.triu(ref["S2_conf"], 1)),
                                       rtol=1e-4, atol=1e-7)
    # R-bar is summed exactly (integer rank shifts); the stored float32 R-bar agrees to float32 precision
    rb = np.abs(store["rank"].values - store["nominal_rank"].values).mean(axis=1)[:, 1]
    ref = salib_sobol.analyze(problem, rb, calc_second_order=True, print_to_console=False)
    np.testing.assert_allclose(res["ST_rbar"].sel(field="overall").values, ref["ST"], atol=1e-10)
    np.testing.assert_allclose(store["rbar"].values[:, 1], rb, rtol=1e-7)


def _salib(store: xr.Dataset, target: str, c: int, f: int) -> dict | None:
    """SALib's indices of one stored output (None when it never changes)."""
    names = list(store["factor"].values)
    problem = {"num_vars": len(names), "names": names, "bounds": [[0, 1]] * len(names)}
    y = store[target].values[:, c, f].astype(np.float64)
    return None if y.std() == 0 else salib_sobol.analyze(problem, y, calc_second_order=True, print_to_console=False)


def test_sobol_targets_leave_out_an_output(sobol_run, tmp_path):
    """[design] sobol_targets = ["rank"]: the rank indices of the run with both targets, bit for bit (their
    sums are exact), and no score indices; ["score"]: SALib's score indices, no rank ones, and the report
    and summary table, which read rank indices, still come out."""
    _, full = sobol_run
    base = (ROOT / "scenarios" / "cn36-2019.toml").read_text().replace("n = 4096", "n = 256")
    base = base.replace("second_order = true", "second_order = true\nsecond_order_conf = true")
    spec = tmp_path / "rank.toml"
    spec.write_text(base.replace("second_order = true", 'second_order = true\nsobol_targets = ["rank"]', 1))
    out = tmp_path / "rank.zarr"
    engine.run(spec, out=out, synchronous=True)
    got = xr.open_zarr(out, group="analysis").load()
    assert list(got["target"].values) == ["rank"] and got.attrs["sobol_targets"] == "rank"
    assert xr.open_zarr(out).attrs["sobol_targets"] == "rank"
    for name in ("S1", "ST", "S2", "S1_conf", "ST_conf", "S2_conf", "constant"):
        np.testing.assert_array_equal(got[name].values, full[name].sel(target=["rank"]).values, err_msg=name)
    np.testing.assert_array_equal(got["nearly_constant"].values, full["nearly_constant"].values)
    assert got.attrs["max_ST_conf"] == full.attrs["max_ST_conf"]  # here the widest is a rank's

    spec = tmp_path / "score.toml"
    spec.write_text(base.replace("second_order = true", 'second_order = true\nsobol_targets = ["score"]', 1))
    out = tmp_path / "score.zarr"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--synchronous"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "rank stability, field overall" in proc.stdout and (tmp_path / "score.html").stat().st_size > 10_000
    got = xr.open_zarr(out, group="analysis").load()
    assert list(got["target"].values) == ["score"] and "nearly_constant" not in got
    store = xr.open_zarr(out)
    for c, f in ((3, 0), (17, 1), (30, 1)):
        ref = _salib(store, "score", c, f)
        one = got.sel(target="score").isel(city=c, field=f)
        np.testing.assert_allclose(one["S1"].values, ref["S1"], atol=1e-10)
        np.testing.assert_allclose(one["ST"].values, ref["ST"], atol=1e-10)


def test_constant_rank_is_zero_and_flagged(sobol_run):
    _, res = sobol_run
    beijing = res.sel(city="Beijing", field="overall", target="rank")
    assert bool(beijing["constant"]) and float(beijing["rank_median"]) == 1
    assert (beijing["S1"].values == 0).all() and (beijing["ST"].values == 0).all()
    assert np.isfinite(res["ST"].values).all()


def test_analysis_group_opens_with_plain_xarray(sobol_run):
    out, _ = sobol_run
    a = xr.open_zarr(out, group="analysis")
    for name in ("nominal_rank", "rank_mean", "rank_median", "rank_q05", "rank_q95"):
        assert a[name].dims == ("city", "field")
    assert a["rank_prob"].dims == ("city", "field", "rank_value")
    assert a["rbar_mean"].dims == ("field",)
    assert a["S1"].dims == ("target", "factor", "city", "field") and list(a["target"].values) == ["rank", "score"]
    assert a["ST_rbar"].dims == ("factor", "field")
    # the root store is unchanged and still opens
    assert xr.open_zarr(out)["rank"].dtype == np.int16


def test_hist_quantile_matches_numpy():
    rng = np.random.default_rng(5)
    for _ in range(50):
        values = rng.integers(1, 8, rng.integers(1, 40))
        counts = np.bincount(values, minlength=8)[1:]
        for q in (0.05, 0.25, 0.5, 0.95):
            assert hist_quantile(counts, q) == pytest.approx(np.percentile(values, 100 * q))


def test_group_indices(tmp_path):
    """Factors sharing a group label get one index per group (SALib groups)."""
    text = (ROOT / "scenarios" / "asem-jrc-sobol.toml").read_text().replace("n = 1024", "n = 64")
    spec = tmp_path / "g.toml"
    spec.write_text(text)
    out = tmp_path / "g.zarr"
    engine.run(spec, out=out, synchronous=True)
    res = engine.analyze(out)
    assert res["ST"].dims == ("target", "factor_group", "city", "field")
    assert list(res["factor_group"].values) == ["indicator weights", "aggregate weights", "normalisation",
                                                "aggregation", "imputation"]
    store = xr.open_zarr(out)
    groups = list(res["factor_group"].values)
    problem = {"num_vars": len(store["factor"]), "names": list(store["factor"].values),
               "bounds": [[0, 1]] * len(store["factor"]), "groups": list(store["factor_group"].values)}
    y = store["score"].values[:, 0, 1].astype(np.float64)
    ref = salib_sobol.analyze(problem, y, calc_second_order=False, print_to_console=False)
    np.testing.assert_allclose(res["ST"].sel(target="score").isel(city=0, field=1).values, ref["ST"], atol=1e-10)
    assert len(groups) == 5


def test_remove_one_cli():
    res = subprocess.run([sys.executable, "-m", "engine.cli", "analyze", "--remove-one", "asem"], capture_output=True,
                         text=True, check=True)
    assert "Conn" in res.stdout and "mean" in res.stdout
    from engine.analysis.remove_one import remove_one

    r = remove_one("cn36-2019")
    assert r.sizes["element"] == 4 and (r["mean_abs_rank_change"] >= 0).all()
    # removing P1 by hand: weights 0, .35, .35, .15 renormalised
    cn = engine.score(engine.load_dataset("cn36-2019"), settings=["exclude=P1"]).sel(field="overall")
    nominal = engine.score(engine.load_dataset("cn36-2019")).sel(field="overall")
    expected = np.abs(cn["rank"].values.astype(int) - nominal["rank"].values).mean()
    assert float(r["mean_abs_rank_change"].sel(element="P1", field="overall")) == pytest.approx(expected)
