"""Sensitivity from given data (engine.stats.given) against independent references: SALib's partition
estimator (same estimator: equal to rounding), SALib's RBD-FAST and KDE delta (other estimators: within the
intervals), the analytic first-order indices of the Ishigami and linear models, the spread of repeated
estimates, and a plain reference implementation applied to a Monte Carlo run's stored design and ranks."""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from distributed import Client, LocalCluster
from SALib.analyze import delta as salib_delta
from SALib.analyze import rbd_fast
from scipy.stats import norm, qmc, rankdata

import engine
from engine.design import weight_schemes
from engine.kernel import Prepared
from engine.spec import Spec
from engine.stats.given import SCORE_CLASSES, Classes, GivenSums, given_indices, plischke_bins
from engine.stats.given_run import BUDGET_CELLS, PILOT, make_config
from engine.stats.poisson import draws
from engine.sweep.layout import nominal

ROOT = Path(__file__).resolve().parents[1]
A, B = 7.0, 0.1  # Ishigami constants


def ishigami(x: np.ndarray) -> np.ndarray:
    return np.sin(x[:, 0]) + A * np.sin(x[:, 1]) ** 2 + B * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_s1() -> np.ndarray:
    """Analytic first-order indices of the Ishigami function on [-pi, pi]^3."""
    v1 = 0.5 * (1 + B * np.pi**4 / 5) ** 2
    v2 = A**2 / 8
    v = v1 + v2 + B**2 * np.pi**8 * (1 / 18 - 1 / 50)
    return np.array([v1 / v, v2 / v, 0.0])


def uniform(n: int, d: int, seed: int) -> np.ndarray:
    return qmc.Sobol(d, scramble=True, seed=seed).random(n)


def equal_bins(u: np.ndarray, b: int) -> np.ndarray:
    return np.minimum((u * b).astype(int), b - 1).T


def salib_partition(x: np.ndarray, m: int) -> np.ndarray:
    """SALib delta's equal-frequency classes: ordinal rank of x in (edge_j, edge_j+1] of linspace(0, N, m+1)."""
    edges = np.linspace(0, len(x), m + 1)
    return np.searchsorted(edges, rankdata(x, method="ordinal"), side="left") - 1


def plain_s1(bins: np.ndarray, y: np.ndarray) -> float:
    """Var(E[Y | bin]) / Var(Y) with pandas."""
    g = pd.Series(y).groupby(bins)
    return float((g.size() * (g.mean() - y.mean()) ** 2).sum() / len(y) / y.var())


def plain_delta(bins: np.ndarray, y: np.ndarray) -> float:
    """1/2 E_bin sum_r |P(r) - P(r | bin)| from a contingency table."""
    t = pd.crosstab(bins, y).to_numpy(float)
    p, pb, nb = t.sum(0) / t.sum(), t / t.sum(1, keepdims=True), t.sum(1) / t.sum()
    return float(0.5 * (nb * np.abs(pb - p).sum(1)).sum())


@pytest.mark.parametrize("lam", [0.3, 4.0, 9.99, 10.0, 57.0, 2500.0])
def test_poisson_draws_follow_the_poisson_law(lam):
    """The bootstrap's Poisson sampler against scipy's pmf: chi-square over the bulk, mean and variance."""
    from scipy.stats import chisquare, poisson

    n = 200_000
    x = draws(lam, n, 7, 3)
    lo, hi = (int(v) for v in poisson.ppf([0.001, 0.999], lam))
    k = np.arange(lo, hi + 1)
    counts = np.bincount(x, minlength=hi + 1)
    obs = np.r_[counts[:lo].sum(), counts[lo : hi + 1], counts[hi + 1 :].sum()]
    p = np.r_[poisson.cdf(lo - 1, lam), poisson.pmf(k, lam), poisson.sf(hi, lam)]
    keep = p * n > 5
    assert chisquare(obs[keep], p[keep] / p[keep].sum() * obs[keep].sum()).pvalue > 1e-3
    assert abs(x.mean() - lam) < 5 * np.sqrt(lam / n) and abs(x.var() / lam - 1) < 0.02
    assert not np.array_equal(x[:100], draws(lam, 100, 7, 4))  # streams differ


def table_s1(bins: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Var(E[Y | bin]) / Var(Y) of every column of y (n, M), 0 for a constant column (plain numpy)."""
    onehot = (bins[:, None] == np.arange(bins.max() + 1)).astype(float)
    n_b = onehot.sum(0)
    means = onehot.T @ y / np.maximum(n_b, 1)[:, None]
    num = (n_b[:, None] * (means - y.mean(0)) ** 2).sum(0) / len(y)
    var = y.var(0)
    return np.divide(num, var, out=np.zeros_like(var), where=np.ptp(y, axis=0) > 0)


def table_delta(bins: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """1/2 E_bin sum_r |P(r) - P(r | bin)| of every column of classes (n, M), integer values (plain numpy)."""
    onehot = (bins[:, None] == np.arange(bins.max() + 1)).astype(float)
    n_b = onehot.sum(0)[:, None]
    out = np.zeros(classes.shape[1])
    for v in np.unique(classes):
        hit = (classes == v).astype(float)
        out += np.abs(onehot.T @ hit - n_b * hit.mean(0)).sum(0)
    varying = np.ptp(classes, axis=0) > 0
    return np.where(varying, out / (2 * len(classes)), 0.0)


def test_s1_equals_salib_partition_estimator():
    """The same estimator as SALib's ``delta.sobol_first`` on SALib's own partition: equal to 1e-10, for
    float outputs and integer (rank) outputs."""
    n = 2**12
    x = (uniform(n, 3, 1) - 0.5) * 2 * np.pi
    y = ishigami(x)
    m = plischke_bins(n)
    bins = np.stack([salib_partition(x[:, i], m) for i in range(3)])
    edges = np.linspace(0, n, m + 1)
    ranks = rankdata(y, method="min").astype(np.int16) // 64  # an integer output with ties
    res = given_indices(bins, np.c_[y, y + 1e3], [m] * 3)
    res_int = given_indices(bins, ranks, [m] * 3)
    for i in range(3):
        ref = salib_delta.sobol_first(y, x[:, i], edges)
        np.testing.assert_allclose(res["S1"][i], ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(res_int["S1"][i, 0], salib_delta.sobol_first(ranks.astype(float), x[:, i], edges),
                                   rtol=0, atol=1e-10)
        assert res_int["delta_hat"][i, 0] == pytest.approx(plain_delta(bins[i], ranks), abs=1e-12)


def test_s1_ishigami_and_linear_within_bootstrap_intervals():
    """Analytic first-order indices inside the 95 % bootstrap intervals at N = 2^14."""
    n = 2**14
    u = uniform(n, 3, 7)
    b = plischke_bins(n)  # as a run of n scenarios bins its continuous factors
    res = given_indices(equal_bins(u, b), ishigami((u - 0.5) * 2 * np.pi), [b] * 3, seed=3)
    s1 = ishigami_s1()
    assert np.all(np.abs(res["S1"][:, 0] - s1) <= res["S1_conf"][:, 0]), (res["S1"][:, 0], s1, res["S1_conf"][:, 0])
    c = np.array([1.0, 2.0, 0.5, 0.0])
    u4 = uniform(n, 4, 8)
    lin = given_indices(equal_bins(u4, b), u4 @ c, [b] * 4, seed=4)
    assert np.all(np.abs(lin["S1"][:, 0] - c**2 / (c**2).sum()) <= lin["S1_conf"][:, 0])
    assert np.all(lin["S1_conf"] > 0)


def test_bootstrap_intervals_match_the_spread_of_repeated_runs():
    """The bootstrap half-widths / 1.96 are the standard deviations of S1 and delta over independent
    samples (20 repetitions, within a factor 1.6)."""
    b, n, c = 8, 2**11, np.array([1.0, 2.0, 0.0])
    rng = np.random.default_rng(0)
    runs = []
    for rep in range(20):
        u = rng.random((n, 3))
        y = np.round(u @ c * 4).astype(np.int16)  # a discrete output: delta by exact distributions
        runs.append(given_indices(equal_bins(u, b), y, [b] * 3, seed=rep))
    for key in ("S1", "delta"):
        spread = np.std([r[key][:2, 0] for r in runs], axis=0, ddof=1)
        half = np.mean([r[f"{key}_conf"][:2, 0] for r in runs], axis=0) / 1.96
        assert np.all((half / spread > 1 / 1.6) & (half / spread < 1.6)), (key, half, spread)


def gaussian_delta(c: float, bins: int, classes: int | None = None) -> float:
    """Borgonovo's delta of X in Y = X + c W (X, W standard normal), X cut into ``bins`` and Y into
    ``classes`` equal-probability classes (the estimand of the histogram estimator; None: Y continuous),
    by quadrature."""
    s2 = 1 + c * c
    y = np.linspace(-10, 10, 40001) * np.sqrt(s2)
    q = norm.ppf(np.linspace(0, 1, bins + 1))
    m, s = y / s2, c / np.sqrt(s2)  # X | Y = y
    joint = norm.pdf(y, scale=np.sqrt(s2)) * (norm.cdf((q[1:, None] - m) / s) - norm.cdf((q[:-1, None] - m) / s))
    if classes is None:
        f = np.abs(joint - joint.sum(0) / bins).sum(0)
        return float(0.5 * ((f[1:] + f[:-1]) / 2 * np.diff(y)).sum())
    cdf = np.c_[np.zeros(bins), np.cumsum((joint[:, 1:] + joint[:, :-1]) / 2 * np.diff(y), axis=1)]
    edges = norm.ppf(np.linspace(0, 1, classes + 1), scale=np.sqrt(s2)).clip(y[0], y[-1])
    p = np.diff(np.array([np.interp(edges, y, row) for row in cdf]), axis=1)  # P(bin, class)
    return float(0.5 * np.abs(p - 1 / (bins * classes)).sum())


def test_delta_linear_gaussian_within_bootstrap_intervals():
    """Y = X1 + 0.7 X2 + 0 X3, independent draws (what the bootstrap assumes), N = 2^14: delta of the
    influential factors within the 95 % intervals of its analytic value; the inert factor's delta stays at
    the noise floor the bias reduction leaves (documented)."""
    n, c = 2**14, 0.7
    b = plischke_bins(n)
    u = np.random.default_rng(12).random((n, 3))
    x = norm.ppf(u)
    res = given_indices(equal_bins(u, b), x[:, 0] + c * x[:, 1], [b] * 3, seed=2)
    exact = np.array([gaussian_delta(c, b, 16), gaussian_delta(1 / c, b, 16)])
    assert np.all(np.abs(res["delta"][:2, 0] - exact) <= res["delta_conf"][:2, 0]), (res["delta"][:2, 0], exact)
    assert 0 <= res["delta"][2, 0] < 0.05 < res["delta_hat"][2, 0] + 0.02
    assert np.all(res["delta_bias"][:, 0] > 0)


def test_other_estimators_within_intervals():
    """Other estimators of the same indices. SALib's RBD-FAST (spectral) S1: within the sum of both
    intervals. SALib's delta (kernel density estimates, not bias-reduced here): smoothing biases it low for
    influential factors, so ours (the same partition of X, not bias-reduced either) is the closer one to
    the analytic delta, and the two agree to 0.03."""
    n = 2**12
    x = (uniform(n, 3, 11) - 0.5) * 2 * np.pi
    y = ishigami(x)
    problem = {"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[-np.pi, np.pi]] * 3}
    m = plischke_bins(n)
    mine = given_indices(np.stack([salib_partition(x[:, i], m) for i in range(3)]), y, [m] * 3, seed=5)
    rbd = rbd_fast.analyze(problem, x, y, num_resamples=100, seed=5)
    err = np.abs(mine["S1"][:, 0] - np.array(rbd["S1"]))
    assert np.all(err <= mine["S1_conf"][:, 0] + np.array(rbd["S1_conf"])), (mine["S1"][:, 0], rbd["S1"])

    c = 0.7
    u = uniform(n, 3, 5)
    x = norm.ppf(u)
    y = x[:, 0] + c * x[:, 1]
    bins = np.stack([salib_partition(x[:, i], m) for i in range(3)])
    mine = given_indices(bins, y, [m] * 3, seed=1)["delta_hat"][:2, 0]
    grid = np.linspace(y.min(), y.max(), 100)
    kde = np.array([salib_delta.calc_delta(y, grid, x[:, i], np.linspace(0, n, m + 1)) for i in range(2)])
    exact = np.array([gaussian_delta(c, m), gaussian_delta(1 / c, m)])
    assert np.all(np.abs(mine - exact) < np.abs(kde - exact)), (mine, kde, exact)
    assert np.all(np.abs(mine - kde) < 0.03)


def test_sums_merge_exactly_in_any_split():
    """Chunks added to separate instances and merged give the indices of one pass (integer tables: equal;
    float sums: to rounding), and the bootstrap does not depend on the split."""
    rng = np.random.default_rng(2)
    n, nb = 3000, [5, 3, 8]
    u = rng.random((n, 3))
    bins = np.stack([np.minimum((u[:, j] * nb[j]).astype(int), nb[j] - 1) for j in range(3)])
    y = np.c_[u @ [3.0, 1.0, 0.2], np.sin(6 * u[:, 0]), np.full(n, 2.0)]
    cl = Classes.quantiles(y[:500], 12)
    one = GivenSums(nb, 3, cl, y[0])
    one.add(bins, y)
    parts = [GivenSums(nb, 3, cl, y[0]) for _ in range(3)]
    for i, (a, b) in enumerate([(0, 700), (700, 2100), (2100, n)]):
        parts[(i * 2) % 3].add(bins[:, a:b], y[a:b])
    merged = GivenSums.from_export(parts[2].export()).merge(GivenSums.from_export(parts[0].export())).merge(parts[1])
    np.testing.assert_array_equal(one.table, merged.table)
    r1, r2 = one.result(50, seed=9), merged.result(50, seed=9)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)  # every (output, factor) pair draws from its own stream
        r3 = one.result(50, seed=9)
    finally:
        numba.set_num_threads(threads)
    for key in r1:
        np.testing.assert_allclose(r1[key], r2[key], rtol=1e-10, atol=1e-12, err_msg=key)
        np.testing.assert_array_equal(r1[key], r3[key], err_msg=key)
    assert r1["constant"].tolist() == [False, False, True] and np.all(r1["S1"][:, 2] == 0)


def test_memory_bound_reduces_bins_then_classes_then_switches_off():
    spec = Spec.from_toml(ROOT / "scenarios" / "gtii-2019.toml")
    text = spec.text.replace('kind = "sobol"', 'kind = "montecarlo"')
    spec = Spec.from_text(text, source="mc", ds=spec.ds)
    prep = Prepared(spec.ds)
    schemes = weight_schemes(spec, prep.tree)
    nom = nominal(spec, prep, schemes)
    n_c, n_f = nom.rank.shape

    def cells(c):
        return (n_c * n_f * (c.rank.K + c.score.K) + n_f * c.rbar.K) * sum(c.n_bins)

    full = make_config(spec, prep, schemes, nom.rank, nom.score)
    assert full.n_bins[0] == plischke_bins(spec.n_scenarios) and full.rank.K == n_c + 1 and not full.note and cells(full) <= BUDGET_CELLS
    small = make_config(spec, prep, schemes, nom.rank, nom.score, budget=cells(full) // 5)
    assert small.n_bins[0] < full.n_bins[0] and small.note and cells(small) <= cells(full) // 5
    assert make_config(spec, prep, schemes, nom.rank, nom.score, budget=1000) is None


@pytest.fixture(scope="module")
def mc_run(tmp_path_factory):
    """A small Monte Carlo run (cn36: 4 pillar weights, aggregation and normalisation choices; 6 chunks) on a
    real two-worker cluster."""
    tmp = tmp_path_factory.mktemp("given")
    text = (ROOT / "scenarios" / "cn36-2019.toml").read_text()
    text = text.replace('kind = "sobol"', 'kind = "montecarlo"').replace("n = 4096", "n = 600\nchunk = 100")
    text = text.replace("second_order = true", "second_order = false")
    text += '\n[[factor]]\nname = "normalisation"\nkind = "normalisation"\nchoices = ["none", "minmax:1,100", "rank"]\n'
    spec = tmp / "mc.toml"
    spec.write_text(text)
    out = tmp / "mc.zarr"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        engine.run(spec, out=out, client=client)
    return out


def test_run_analysis_equals_plain_reference_on_stored_data(mc_run):
    """The analysis group of a Monte Carlo run holds S1_given and delta with the Sobol variables' dims, equal
    to a plain implementation applied to the stored design, choices, ranks and scores."""
    store = xr.open_zarr(mc_run)
    res = xr.open_zarr(mc_run, group="analysis").load()
    n_c, n_f, d = store.sizes["city"], store.sizes["field"], store.sizes["factor"]
    for name in ("S1_given", "S1_given_conf", "delta", "delta_conf", "delta_bias"):
        assert res[name].dims == ("target", "factor", "city", "field")
        assert res[name].shape == (2, d, n_c, n_f)
    for name in ("S1_given_rbar", "S1_given_rbar_conf", "delta_rbar", "delta_rbar_conf"):
        assert res[name].dims == ("factor", "field")
    assert list(res["target"].values) == ["rank", "score"]
    assert list(res["factor"].values) == list(store["factor"].values)

    design, ranks, scores = store["design"].values, store["rank"].values, store["score"].values.astype(np.float64)
    bins = []
    for j, f in enumerate(store["factor"].values):
        kind, choices = str(store["factor_kind"][j].values), str(store["factor_choices"][j].values).split("|")
        if kind == "weight":
            nb = int(res["factor_bins"].sel(factor=f))
            bins.append(np.minimum((design[:, j] * nb).astype(int), nb - 1))
        else:  # a discrete factor's bins are its choices, read from the stored choice strings
            var = {"exclude": "excluded"}.get(kind, kind)
            bins.append(np.array([choices.index(c) for c in map(str, store[var].values)]))
    rbar = np.abs(ranks - store["nominal_rank"].values).mean(axis=1)
    pilot = scores[:PILOT].reshape(PILOT, -1)  # the run's first rows set the score classes
    q = np.arange(1, SCORE_CLASSES) / SCORE_CLASSES
    cut = [np.unique(np.nanquantile(pilot[:, m], q)) for m in range(n_c * n_f)]
    score_class = np.stack([np.searchsorted(cut[m], s, "right") for m, s in enumerate(scores.reshape(len(scores), -1).T)], 1)
    for j in range(d):
        got = res.isel(factor=j)
        for target, y in (("rank", ranks.reshape(len(ranks), -1)), ("score", scores.reshape(len(scores), -1))):
            r = got.sel(target=target)
            np.testing.assert_allclose(r["S1_given"].values.ravel(), table_s1(bins[j], y), rtol=0, atol=1e-10)
            classes = y.astype(int) if target == "rank" else score_class
            np.testing.assert_allclose((r["delta"] + r["delta_bias"]).values.ravel(), table_delta(bins[j], classes),
                                       rtol=0, atol=1e-10)
        np.testing.assert_allclose(got["S1_given_rbar"].values, table_s1(bins[j], rbar), rtol=0, atol=1e-10)
    # spot checks of the vectorised reference against the pandas one
    assert table_s1(bins[0], ranks[:, 3])[1] == pytest.approx(plain_s1(bins[0], ranks[:, 3, 1]), abs=1e-12)
    assert table_delta(bins[4], ranks[:, 5])[0] == pytest.approx(plain_delta(bins[4], ranks[:, 5, 0]), abs=1e-12)
    assert (res["delta_conf"].sel(target="rank") > 0).sum() > 0.9 * n_c * n_f * d
    assert np.isfinite(res["S1_given_conf"].values).all() and np.isfinite(res["delta_conf"].values).all()
    assert ((res["S1_given"] >= 0) & (res["S1_given"] <= 1)).all()
    # `rankstab analyze` rebuilds the same indices from the store alone
    again = engine.analyze(mc_run, write=False)
    for name in ("S1_given", "delta", "delta_conf", "S1_given_rbar"):
        np.testing.assert_allclose(again[name].values, res[name].values, rtol=1e-9, atol=1e-12, err_msg=name)
