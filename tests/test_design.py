"""Designs: identical to SALib's Saltelli sample, independent of chunking, decoded as documented."""

from __future__ import annotations

import numpy as np
import pytest
from SALib.sample import sobol as salib_sobol

from engine.design import (
    decode,
    design_matrix,
    design_rows,
    nominal_row,
    row_labels,
    saltelli,
    weight_schemes,
)
from engine.errors import UserError
from engine.kernel import Prepared
from engine.spec import Spec

GTII = Spec.from_toml("gtii-2019")


@pytest.mark.parametrize("second_order", [False, True])
@pytest.mark.parametrize("groups", [None, ["a", "b", "a", "c"]])
def test_saltelli_equals_salib(second_order, groups):
    problem = {"num_vars": 4, "names": list("wxyz"), "bounds": [[0, 1]] * 4}
    if groups:
        problem["groups"] = groups
    ref = salib_sobol.sample(problem, 64, calc_second_order=second_order, seed=7)
    group_of = None if groups is None else np.array([list(dict.fromkeys(groups)).index(g) for g in groups])
    np.testing.assert_array_equal(saltelli(4, group_of, 64, second_order, seed=7), ref)


@pytest.mark.parametrize("d", [1, 2, 7, 32, 54, 300])
@pytest.mark.parametrize("seed", [0, 2019, 2**40 + 3])
def test_sobol_points_equal_scipy(d, seed):
    """rankstab's own scrambled Sobol' sequence (no scipy.stats import) is SciPy's, bit for bit, for any
    slice: the first point alone, powers of two and not, offsets across the 2**k boundaries."""
    import warnings

    from scipy.stats import qmc

    from engine.sequence import sobol_points

    for skip, n in ((0, 1), (0, 2), (0, 1000), (1, 63), (127, 130), (4093, 8), (2**14 + 1, 257)):
        q = qmc.Sobol(d=d, scramble=True, seed=seed)
        if skip:
            q.fast_forward(skip)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # n not a power of two
            ref = q.random(n)
        np.testing.assert_array_equal(sobol_points(d, n, seed, skip), ref, err_msg=f"skip={skip} n={n}")


def test_default_spec_design_equals_salib():
    names = [f.name for f in GTII.factors]
    problem = {"num_vars": len(names), "names": names, "bounds": [[0, 1]] * len(names)}
    ref = salib_sobol.sample(problem, 64, calc_second_order=True, seed=GTII.design.seed)
    small = Spec.from_text(GTII.text.replace("n = 16384", "n = 64"))
    np.testing.assert_array_equal(design_matrix(small), ref)


@pytest.mark.parametrize("kind", ["sobol-design", "mc-sobol", "mc-random"])
def test_rows_do_not_depend_on_chunking(kind):
    text = GTII.text.replace("n = 16384", "n = 256")
    if kind != "sobol-design":
        text = text.replace('kind = "sobol"', 'kind = "montecarlo"').replace("second_order = true", "second_order = false")
        text = text.replace("[design]", f'[design]\nsampler = "{kind[3:]}"')
    spec = Spec.from_text(text)
    full = design_matrix(spec)
    step = spec.block_size * 3
    parts = [design_rows(spec, a, min(a + step, spec.n_scenarios)) for a in range(0, spec.n_scenarios, step)]
    np.testing.assert_array_equal(np.concatenate(parts), full)
    assert full.shape == (spec.n_scenarios, len(spec.factors)) and (full >= 0).all() and (full < 1).all()


def test_block_labels_and_samples():
    block, sample = row_labels(GTII, 0, 2 * GTII.block_size)
    assert block[0] == "A" and block[GTII.block_size - 1] == "B" and block[1] == "AB_w_ORG"
    assert block[17] == "BA_w_ORG" and sample[GTII.block_size] == 1


def test_decode_maps_u_to_documented_values():
    prep = Prepared(GTII.ds)
    schemes = weight_schemes(GTII, prep.tree)
    row = nominal_row(GTII)
    x = np.tile(row, (3, 1))
    x[1, 0] = 0.0   # w_ORG multiplier 0.5
    x[2, 13] = 0.99  # normalisation: last of 4 choices
    x[2, 15] = 0.2   # exclude: bin 1 of 6 = ORG
    dec = decode(GTII, prep.tree, x, schemes)
    w = dec.batch.weights
    nodes = prep.tree.nodes
    assert w[0, nodes.index("ORG")] == pytest.approx(1 / 3)
    assert w[1, nodes.index("ORG")] == pytest.approx(0.5 / 2.5)
    assert w[2, nodes.index("ORG")] == 0 and w[2, nodes.index("TALENT")] == pytest.approx(0.5)
    assert list(dec.choices["normalisation"]) == ["none", "none", "distance_to_leader"]
    assert list(dec.choices["excluded"]) == ["none", "none", "ORG"]
    assert w[0, nodes.index("IT")] == pytest.approx(1 / 7)


def test_per_level_aggregation_factors():
    text = GTII.text.replace("n = 16384", "n = 16").replace(
        'name = "aggregation"\nkind = "aggregation"\n', 'name = "aggregation"\nkind = "aggregation"\nlevel = "group"\n')
    text += '\n[[factor]]\nname = "agg_overall"\nkind = "aggregation"\nlevel = "overall"\nchoices = ["arithmetic", "copeland"]\n'
    spec = Spec.from_text(text)
    prep = Prepared(spec.ds)
    x = np.tile(nominal_row(spec), (2, 1))
    x[1, 14] = 0.5   # group level: geometric (bin 1 of 3)
    x[1, 16] = 0.9   # overall: copeland
    dec = decode(spec, prep.tree, x, weight_schemes(spec, prep.tree))
    assert list(dec.choices["aggregation"]) == ["arithmetic", "geometric/arithmetic/copeland"]
    overlapping = GTII.text.replace("n = 16384", "n = 16") + (
        '\n[[factor]]\nname = "agg_field"\nkind = "aggregation"\nlevel = "field"\nchoices = ["arithmetic", "harmonic"]\n')
    with pytest.raises(UserError, match="aggregation factors overlap"):
        Spec.from_text(overlapping)


def test_a_checked_spec_is_checked_again_once_its_data_change():
    """`rankstab run` checks a spec before its cluster starts and the sweep gets the checked spec: the checks
    (and the shared prepared data) are reused only while the spec and its data are unchanged."""
    from engine.kernel import shared
    from engine.validate import load

    spec = load(Spec.from_text(GTII.text, source=GTII.source, ds=GTII.ds.copy(deep=True)))  # changed below
    assert load(spec) is spec
    prep = shared(spec.ds)
    assert shared(spec.ds.copy(deep=True)) is prep  # same content: same prepared data
    spec.ds["value"].values[0, 0, 0] = -1.0  # in place: "none" normalisation with geometric needs positives
    with pytest.raises(UserError, match="positive"):
        load(spec)
    assert shared(spec.ds) is not prep
