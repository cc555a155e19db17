"""O(n log n) Spearman and Kendall tau-b (engine.stats.rankcorr) equal scipy.stats.spearmanr and
scipy.stats.kendalltau (variant "b") to 1e-12: many ties, constant vectors, n = 1 and 2, large n."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau, spearmanr

from engine.stats import rankcorr
from engine.stats.rankcorr import TREE_WORDS, kendall_tau_b, rank_correlations, spearman
from engine.stats.summary import correlations


def scipy_pair(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """scipy's rho and tau-b; NaN where scipy says undefined (constant input, n < 2)."""
    if len(x) < 2:
        return np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input
        return float(spearmanr(x, y)[0]), float(kendalltau(x, y, variant="b")[0])


def check(x: np.ndarray, y: np.ndarray) -> None:
    """Every (scenario, field) of rank_correlations(x, y) against scipy."""
    rho, tau = rank_correlations(x, y)
    assert rho.shape == tau.shape == (x.shape[0], x.shape[2])
    for s in range(x.shape[0]):
        for f in range(x.shape[2]):
            sp, kt = scipy_pair(x[s, :, f], y[:, f])
            np.testing.assert_allclose(rho[s, f], sp, rtol=0, atol=1e-12, equal_nan=True)
            np.testing.assert_allclose(tau[s, f], kt, rtol=0, atol=1e-12, equal_nan=True)


@st.composite
def tied_case(draw, max_n: int = 60):
    """Samples (scenario, n, field) and reference (n, field) of small integers: many ties, often constant."""
    n = draw(st.integers(1, max_n))
    n_s = draw(st.integers(1, 4))
    n_f = draw(st.integers(1, 3))
    hi_x = draw(st.integers(1, 6))
    hi_y = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, hi_x, (n_s, n, n_f)).astype(draw(st.sampled_from([np.int16, np.int64, np.float64])))
    y = rng.integers(0, hi_y, (n, n_f)).astype(draw(st.sampled_from([np.int64, np.int32, np.float32])))
    return x, y


@settings(max_examples=150, deadline=None)
@given(tied_case())
def test_many_ties_equal_scipy(case):
    check(*case)


@pytest.mark.parametrize("tree_words", [TREE_WORDS, 0])
def test_many_ties_over_many_words_equal_scipy(tree_words, monkeypatch):
    """Hundreds of items (the counting path's bitmap spans several 64-slot words), many ties in both vectors;
    the words' counts kept as a plain prefix array (the default here) or as a Fenwick tree (large n)."""
    monkeypatch.setattr(rankcorr, "TREE_WORDS", tree_words)

    @settings(max_examples=40, deadline=None)
    @given(tied_case(max_n=300))
    def cases(case):
        check(*case)

    cases()


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 40), st.integers(0, 2**32 - 1))
def test_permutations_and_floats_equal_scipy(n, seed):
    """No ties (permutations, as competition ranks of distinct scores), and real-valued samples."""
    rng = np.random.default_rng(seed)
    x = np.stack([rng.permutation(n) + 1 for _ in range(3)])[:, :, None].astype(np.int16)
    y = (rng.permutation(n) + 1)[:, None]
    check(x, y)
    check(rng.normal(size=(2, n, 2)), np.round(rng.normal(size=(n, 2)), 1))


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_n(n):
    for x0 in ([0, 0], [0, 1], [1, 0]):
        for y0 in ([0, 0], [0, 1], [3, 2]):
            x = np.array(x0[:n], np.int16)[None, :, None]
            y = np.array(y0[:n])[:, None]
            check(x, y)
    if n == 2:
        rho, tau = rank_correlations(np.array([[[1], [2]], [[2], [1]]]), np.array([[5], [7]]))
        assert rho.ravel().tolist() == tau.ravel().tolist() == [1.0, -1.0]


def test_constant_vectors_give_the_fill_value():
    x = np.array([[[3, 1], [3, 2], [3, 3]], [[1, 4], [2, 4], [3, 4]]])  # scenario 0 field 0 constant, ...
    y = np.array([[1, 9], [2, 9], [3, 9]])  # ... field 1 reference constant
    rho, tau = rank_correlations(x, y)
    assert np.isnan(rho[0, 0]) and np.isnan(tau[0, 0]) and np.isnan(rho[:, 1]).all() and np.isnan(tau[:, 1]).all()
    assert rho[1, 0] == tau[1, 0] == 1.0
    rho, tau = rank_correlations(x, y, constant=1.0)
    assert (rho[:, 1] == 1).all() and rho[0, 0] == tau[0, 0] == 1
    # the summary's convention: 1 where either ranking is constant
    sp, kt = correlations(x.astype(np.int16), y)
    assert (sp[:, 1] == 1).all() and sp[0, 0] == kt[0, 0] == 1
    np.testing.assert_array_equal(spearman(x, y, 1.0), sp)
    np.testing.assert_array_equal(kendall_tau_b(x, y, 1.0), kt)


@pytest.mark.parametrize("n", [1000, 2000, 5003])
def test_large_n_equal_scipy(n):
    """Large n: competition ranks of perturbed scores with and without ties, as the sweep produces them."""
    rng = np.random.default_rng(n)
    base = rng.normal(size=n)
    nominal = np.stack([n - np.argsort(np.argsort(base)), np.round(base * 4)], axis=1).astype(np.int64)
    x = np.stack([np.round(base + rng.normal(scale=sc, size=n), 1) for sc in (0.01, 0.3, 3.0)])
    x = np.stack([x, np.round(x)], axis=2)
    check(x, nominal)


@pytest.mark.parametrize("tree_words", [TREE_WORDS, 0])
@pytest.mark.parametrize("n", [1000, 2000])
def test_large_n_integer_ranks_equal_scipy(n, tree_words, monkeypatch):
    """Competition ranks (int16, the counting path) at large n, with and without ties, against a reference
    with ties; and integers spread too widely for counting (the sorting path) agree with scipy too. The
    counting path keeps the counts of its 64-slot words as a prefix array, or (``tree_words`` 0) a tree."""
    monkeypatch.setattr(rankcorr, "TREE_WORDS", tree_words)
    rng = np.random.default_rng(n + 1)
    base = rng.normal(size=n)
    nominal = np.stack([n - np.argsort(np.argsort(base)), np.round(base * 4)], axis=1).astype(np.int64)
    scores = np.stack([np.round(base + rng.normal(scale=sc, size=n), 1) for sc in (0.01, 0.3, 3.0)])
    ranks = (scores[:, :, None] < scores[:, None, :]).sum(axis=2) + 1  # competition ranks, ties share the lowest
    x = np.stack([ranks, n + 1 - ranks], axis=2).astype(np.int16)
    check(x, nominal)
    check(x.astype(np.int64) * 10**6, nominal)  # span 10^9: too wide to count


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="do not match"):
        rank_correlations(np.zeros((2, 3, 1)), np.zeros((4, 1)))
