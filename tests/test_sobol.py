"""engine.stats.sobol: SALib's Sobol' estimators for many outputs at once."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from SALib.analyze import sobol as salib_analyze
from SALib.sample import sobol as salib_sample
from SALib.test_functions import Ishigami

import engine.stats.sobol as es
from engine.design import block_labels
from engine.stats.sobol import sobol_indices, sobol_problem

KEYS = ("S1", "ST", "S1_conf", "ST_conf")
#: The documented precision of the bootstrap intervals (README, Guarantees): their sums run in float32, so
#: two groupings of the same terms (or two BLAS builds) agree to ~1e-5 relative, not to 1e-12.
CONF_RTOL = 1e-5


def salib(problem: dict, y: np.ndarray, second_order: bool, seed: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return salib_analyze.analyze(problem, np.ascontiguousarray(y), calc_second_order=second_order,
                                     print_to_console=False, seed=seed)


def model(X: np.ndarray, M: int, seed: int = 0) -> np.ndarray:
    """A nonlinear multi-output model with interactions, (rows, M)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(X.shape[1], M))
    return np.sin(3 * X @ W) + X[:, [0]] * X[:, [-1]] * rng.normal(size=M) + (X @ W) ** 2 + 5.0


def design(problem: dict, N: int, second_order: bool, seed: int = 1) -> np.ndarray:
    return salib_sample.sample(problem, N, calc_second_order=second_order, seed=seed)


def test_block_labels():
    assert block_labels(["w", "n"], False) == ["A", "AB_w", "AB_n", "B"]
    assert block_labels(["w", "n"], True) == ["A", "AB_w", "AB_n", "BA_w", "BA_n", "B"]


@pytest.mark.parametrize("N, names, groups, second_order", [
    (256, list("abc"), None, False),
    (512, list("abcdef"), None, True),
    (1024, list("abcde"), ["g", "h", "g", "k", "h"], False),
    (512, list("abcdef"), ["p", "q", "p", "r", "s", "q"], True),
])
def test_matches_salib(N, names, groups, second_order):
    problem = sobol_problem(names, groups)
    D = len(set(groups)) if groups else len(names)
    Y = model(design(problem, N, second_order), M=10)
    ours = sobol_indices(Y, D, second_order=second_order, seed=11, dtype=np.float64)
    ours32 = sobol_indices(Y, D, second_order=second_order, seed=11)
    keys = KEYS + (("S2", "S2_conf") if second_order else ())
    for m in (0, 4, 9):
        ref = salib(problem, Y[:, m], second_order, seed=11)  # same non-zero seed: same resamples
        for key in keys:
            np.testing.assert_allclose(ours[key][..., m], ref[key], rtol=0, atol=1e-10, err_msg=key)
            np.testing.assert_allclose(ours32[key][..., m], ref[key], rtol=1e-4, atol=1e-7, err_msg=key)
    if second_order:
        lower = np.tril(np.ones((D, D), bool))
        assert np.isnan(ours["S2"][lower]).all() and not np.isnan(ours["S2"][~lower]).any()
    assert not ours["constant"].any()


@pytest.mark.parametrize("integer", [False, True])
def test_second_order_without_its_bootstrap(integer):
    """second_order_conf=False: S1, ST, their intervals and S2 are SALib's as before; only S2_conf is NaN."""
    names = list("abcdef")
    problem = sobol_problem(names)
    Y = model(design(problem, 512, True), M=5)
    Y = np.round(4 * Y).astype(np.int64) if integer else Y
    ours = sobol_indices(Y, 6, second_order=True, seed=11, dtype=np.float64, second_order_conf=False)
    upper = ~np.tril(np.ones((6, 6), bool))
    for m in (0, 4):
        ref = salib(problem, Y[:, m].astype(np.float64), True, seed=11)
        for key in KEYS + ("S2",):
            np.testing.assert_allclose(ours[key][..., m], ref[key], rtol=0, atol=1e-10, err_msg=key)
    assert np.isnan(ours["S2_conf"]).all() and not np.isnan(ours["S2"][upper]).any()


def test_conf_close_to_salib_with_other_draws():
    problem = sobol_problem(list("abcd"))
    Y = model(design(problem, 1024, True), M=6, seed=3)
    ours = sobol_indices(Y, 4, second_order=True, seed=0)
    for m in range(6):
        ref = salib(problem, Y[:, m], True, seed=12345)
        for key in ("S1_conf", "ST_conf", "S2_conf"):
            ratio = np.nanmean(ours[key][..., m]) / np.nanmean(ref[key])
            assert 0.7 < ratio < 1.4, (key, m, ratio)


def test_ishigami_analytic_within_ci():
    problem = {"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[-np.pi, np.pi]] * 3}
    Y = Ishigami.evaluate(design(problem, 2**12, False, seed=2))
    a, b = 7.0, 0.1
    V1, V2 = 0.5 * (1 + b * np.pi**4 / 5) ** 2, a**2 / 8
    V13 = b**2 * np.pi**8 * (1 / 18 - 1 / 50)
    V = V1 + V2 + V13
    S1, ST = np.array([V1, V2, 0]) / V, np.array([V1 + V13, V2, V13]) / V
    np.testing.assert_allclose(S1, [0.3139, 0.4424, 0], atol=1e-4)
    np.testing.assert_allclose(ST, [0.5576, 0.4424, 0.2437], atol=1e-4)
    r = sobol_indices(Y, 3)
    assert (np.abs(r["S1"][:, 0] - S1) <= r["S1_conf"][:, 0]).all()
    assert (np.abs(r["ST"][:, 0] - ST) <= r["ST_conf"][:, 0]).all()


def test_linear_model_within_ci():
    D = 5
    problem = sobol_problem([f"x{i}" for i in range(D)])
    coef = np.array([[1, 2, 3, 0, 0.5], [4, 1, 0, 0, 0], [1, 1, 1, 1, 1], [-2, 0.3, 1, 5, 0]], float).T
    X = design(problem, 2048, True)
    r = sobol_indices(X @ coef, D, second_order=True)
    expected = coef**2 / (coef**2).sum(axis=0)  # uniform factors have equal variance
    for key in ("S1", "ST"):
        assert (np.abs(r[key] - expected) <= r[f"{key}_conf"] + 1e-12).all(), key
    upper = np.triu(np.ones((D, D), bool), 1)
    assert (np.abs(r["S2"][upper]) <= r["S2_conf"][upper] + 1e-12).all()  # no interactions


def test_constant_outputs_are_flagged_zero_without_warnings():
    problem = sobol_problem(list("abc"))
    X = design(problem, 256, True)
    Y = np.column_stack([X.sum(axis=1), np.full(len(X), 0.1), np.full(len(X), 7.0), X[:, 0] ** 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = sobol_indices(Y, 3, second_order=True)
    np.testing.assert_array_equal(r["constant"], [False, True, True, False])
    upper = np.triu(np.ones((3, 3), bool), 1)
    for key in KEYS + ("S2", "S2_conf"):
        vals = r[key][upper] if key.startswith("S2") else r[key]
        assert not np.isnan(vals).any(), key
        assert (vals[..., 1:3] == 0).all(), key
    assert (r["S1"][:, [0, 3]] != 0).any()


def test_deterministic_and_seed_only_moves_conf():
    problem = sobol_problem(list("abcd"))
    Y = model(design(problem, 512, False), M=5)
    r1, r2 = sobol_indices(Y, 4, seed=5), sobol_indices(Y, 4, seed=5)
    other = sobol_indices(Y, 4, seed=6)
    for key in KEYS:
        np.testing.assert_array_equal(r1[key], r2[key])
    np.testing.assert_array_equal(r1["S1"], other["S1"])
    assert not np.array_equal(r1["S1_conf"], other["S1_conf"])


def test_chunking_and_blocking_do_not_change_results(monkeypatch):
    problem = sobol_problem(list("abcd"))
    Y = model(design(problem, 1024, True), M=7)
    ref = sobol_indices(Y, 4, second_order=True, keep_resamples=True)
    monkeypatch.setattr(es, "_BLOCK_BYTES", 1)  # blocks of 256 base samples
    small = sobol_indices(Y, 4, second_order=True, keep_resamples=True, chunk_outputs=3)
    for key in ref:
        np.testing.assert_allclose(small[key], ref[key], rtol=CONF_RTOL, atol=1e-7, err_msg=key)
    z = 1.959963984540054
    np.testing.assert_allclose(ref["S1_conf"], z * ref["S1_conf_all"].std(axis=0, ddof=1), rtol=CONF_RTOL)
    assert ref["ST_conf_all"].shape == (100, 4, 7)


def test_integer_sums_exact_across_flushes_processes_and_blockings():
    """Integer outputs: the float32 running sums are flushed into float64 before they could round, wide
    outputs go straight to float64, and a pickled (compact) half merges back: every chunking, merge order
    and transfer gives exactly the one-pass float64 result."""
    import pickle

    problem = sobol_problem(list("abcd"))
    N, D = 512, 4
    step = 2 * D + 2
    Y = np.rint(model(design(problem, N, True), M=6) * 15).astype(np.int64)  # |y| up to ~150
    Y[:, 5] *= 1000  # a single block of this output already exceeds float32's exact range
    ref = sobol_indices(Y, D, second_order=True, dtype=np.float64, keep_resamples=True)
    kw = dict(second_order=True, integer=True, seed=0, chunk_outputs=2)
    for cut in (1, 7, 64, 300):
        a, b = es.SobolSums(6, D, N, **kw), es.SobolSums(6, D, N, **kw)
        for i0 in range(0, N, cut):
            part = a if (i0 // cut) % 2 else b
            part.add(Y[i0 * step : min(N, i0 + cut) * step], i0)
        assert a.load.max() < 2**24 and b.load.max() < 2**24
        b = pickle.loads(pickle.dumps(b))  # as a worker sends it: compact int32 or float32 sums
        got = a.merge(b).result(keep_resamples=True)
        for key in ref:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=f"{key}, blocks of {cut}")


@pytest.mark.parametrize("compact", [False, True])
def test_blocks_added_in_any_order_and_grouping(compact):
    """Blocks gathered from scattered chunks (as a shard of a large sweep buffers them) and added with their
    base-sample indices give exactly the sums of one pass in order (integer outputs: exact)."""
    problem = sobol_problem(list("abcd"))
    N, D = 256, 4
    step = D + 2
    Y = np.rint(model(design(problem, N, False), M=5) * 15).astype(np.int64)
    ref = sobol_indices(Y, D, second_order=False, dtype=np.float64, keep_resamples=True)
    rng = np.random.default_rng(3)
    order = rng.permutation(N)
    sums = es.SobolSums(5, D, N, integer=True, seed=0, compact=compact)
    for group in np.array_split(order, 11):
        rows = (group[:, None] * step + np.arange(step)[None, :]).ravel()
        sums.add(Y[rows], group)
    got = sums.result(keep_resamples=True)
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    with pytest.raises(ValueError, match="base sample indices"):
        sums.add(Y[:step], np.array([0, 1]))
    with pytest.raises(ValueError, match="outside"):
        sums.add(Y[:step], np.array([N]))


def test_affine_invariance_and_one_dimensional_input():
    problem = sobol_problem(list("abc"))
    Y = model(design(problem, 256, True), M=2)
    r = sobol_indices(Y, 3, second_order=True)
    flipped = sobol_indices(-3.0 * Y[:, 1] + 100.0, 3, second_order=True)
    for key in ("S1", "ST", "S2"):
        np.testing.assert_allclose(flipped[key][..., 0], r[key][..., 1], atol=1e-12)


def test_first_order_from_second_order_design_and_bad_rows():
    problem = sobol_problem(list("abc"))
    Y = model(design(problem, 256, True), M=3)
    full = sobol_indices(Y, 3, second_order=True)
    s1 = sobol_indices(Y, 3, design_second_order=True)
    for key in ("S1", "ST"):  # float64 sums: equal to rounding
        np.testing.assert_allclose(s1[key], full[key], rtol=0, atol=1e-12, err_msg=key)
    for key in ("S1_conf", "ST_conf"):  # float32 bootstrap sums, in another grouping: the documented precision
        np.testing.assert_allclose(s1[key], full[key], rtol=CONF_RTOL, atol=0, err_msg=key)
    full64 = sobol_indices(Y, 3, second_order=True, dtype=np.float64)
    s164 = sobol_indices(Y, 3, design_second_order=True, dtype=np.float64)
    for key in KEYS:  # summed in float64, the intervals agree to rounding too
        np.testing.assert_allclose(s164[key], full64[key], rtol=1e-12, atol=1e-15, err_msg=key)
    assert "S2" not in s1
    with pytest.raises(ValueError, match="not a multiple"):
        sobol_indices(Y[:-1], 3, second_order=True)
    with pytest.raises(ValueError, match="second order"):
        sobol_indices(Y[: 256 * 5], 3, second_order=True, design_second_order=False)
