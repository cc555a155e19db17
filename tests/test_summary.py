"""engine.stats.summary and its helpers: exact, mergeable distributions, resample counts, average ranks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.stats.sobol import _counts_t, resample_counts
from engine.stats.summary import combine, tally, tally_mean, tally_quantile

values = st.lists(st.sampled_from([-1.0, -0.25, 0.0, 1 / 3, 0.5, 2.0, 44.0]), min_size=1, max_size=300)


@given(values, values, st.sampled_from([0.0, 0.05, 0.5, 0.95, 1.0]))
@settings(max_examples=200, deadline=None)
def test_tally_quantiles_and_means_equal_numpy_on_the_expanded_values(a, b, q):
    merged = combine(tally(np.array(a)), tally(np.array(b)))
    both = np.array(a + b)
    assert merged[1].sum() == len(both) and np.all(np.diff(merged[0]) > 0)
    np.testing.assert_allclose(tally_quantile(*merged, q), np.percentile(both, 100 * q), rtol=0, atol=1e-12)
    np.testing.assert_allclose(tally_mean(*merged), both.mean(), rtol=1e-12, atol=1e-12)


def test_resample_counts_are_compact_and_drawn_as_salib_does():
    n, R = 5000, 7
    idx = np.random.default_rng(3).integers(n, size=(n, R))  # SALib's draw for seed 3
    expected = np.stack([np.bincount(idx[:, r], minlength=n) for r in range(R)])
    np.testing.assert_array_equal(resample_counts(n, R, 3), expected)
    assert _counts_t(n, R, 3).dtype == np.uint8  # one byte per base sample and resample


@given(st.lists(st.sampled_from([np.nan, 0.0, 1.0, 2.5, 2.5, -3.0, 7.0]), min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_average_rank_equals_scipy(col):
    from scipy.stats import rankdata

    from engine.methods import average_rank

    x = np.array(col).reshape(-1, 1, 1).repeat(2, axis=2)
    x[:, 0, 1] = x[::-1, 0, 0]
    np.testing.assert_array_equal(average_rank(x), rankdata(x, axis=0, method="average", nan_policy="omit"))
