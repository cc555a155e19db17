"""The method registries: an option registered in one place (one decorated function) is accepted in
``--set``-style text, used by the preparation or the kernel, listed in error messages, and gone once
unregistered. References are plain computations written here, on the embedded (synthetic) gtii-2019 data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.data import load_dataset
from engine.errors import UserError
from engine.kernel import Batch, Prepared, evaluate
from engine.methods import AGGREGATIONS, NORMALISATIONS, Methodology, Option, Registry, parse_option, prepare

GTII = load_dataset("gtii-2019")


@pytest.fixture
def unit_normalisation():
    """A ``unit`` normalisation registered for one test: each column divided by its largest absolute value,
    times ``scale``."""

    @NORMALISATIONS.register("unit", check=lambda scale: None if scale > 0 else "the scale must be positive")
    def unit(x: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
        """Divide each column by its largest absolute value, then multiply by scale."""
        return x / np.nanmax(np.abs(x), axis=0) * scale

    yield unit
    if "unit" in NORMALISATIONS:
        NORMALISATIONS.unregister("unit")


def test_registered_normalisation_is_parsed_and_used_by_prepare(unit_normalisation):
    assert parse_option("normalisation", "unit") == Option("unit", (1.0,))
    assert str(parse_option("normalisation", "unit:100")) == "unit:100"
    m = Methodology().with_settings(["normalisation=unit:100", "denominate=false"])
    assert m.normalisation == Option("unit", (100.0,))
    assert m.as_mapping()["normalisation"] == "unit:100"

    got = prepare(GTII, m.prep)
    value = np.asarray(GTII["value"].values, dtype=float)
    direction = GTII["direction"].values
    n_c, n_f, n_i = value.shape
    for f in range(n_f):
        for i in range(n_i):
            col = [value[c, f, i] * direction[i] for c in range(n_c)]
            top = max(abs(v) for v in col if not math.isnan(v))
            for c in range(n_c):
                if math.isnan(col[c]):
                    assert math.isnan(got[c, f, i])
                else:
                    assert got[c, f, i] == pytest.approx(col[c] / top * 100.0, rel=1e-12)

    with pytest.raises(UserError, match=r'^normalisation "unit:0": the scale must be positive$'):
        parse_option("normalisation", "unit:0")
    with pytest.raises(UserError, match=r'^normalisation "unit:1,2" takes 1 parameter\(s\) \(unit:1\), not 2$'):
        parse_option("normalisation", "unit:1,2")
    with pytest.raises(UserError, match=r'unknown normalisation "unti" \(did you mean "unit"\?\); choose one of: '
                                        r"none, minmax, zscore, rank, distance_to_leader, goalposts, unit$"):
        Methodology().with_settings(["normalisation=unti"])


def test_unregistered_normalisation_is_unknown_again(unit_normalisation):
    assert "unit" in NORMALISATIONS
    NORMALISATIONS.unregister("unit")
    with pytest.raises(UserError, match=r'^unknown normalisation "unit"; choose one of: none, minmax, zscore, '
                                        r"rank, distance_to_leader, goalposts$"):
        parse_option("normalisation", "unit:2")


def test_registered_aggregation_is_used_by_the_kernel():
    """A quadratic (power 2) mean, registered as its generator x**2 with the inverse sqrt, at every level and
    at the group and overall levels only, against a plain recursive reference."""

    @AGGREGATIONS.register("quadratic", inverse=np.sqrt, needs_positive=True)
    def quadratic(x: np.ndarray) -> np.ndarray:
        """Weighted quadratic mean, sqrt(sum w x^2)."""
        return x**2

    try:
        prep = Prepared(GTII)
        rng = np.random.default_rng(12)
        raw = rng.uniform(0.2, 2.0, (4, len(prep.tree.nodes)))
        w = prep.tree.renormalise(raw)
        p = parse_option("normalisation", "minmax:1,100")
        m = Methodology(normalisation=p, denominate=False)
        x = prepare(GTII, m.prep)
        for method in ("quadratic", "quadratic/arithmetic/quadratic"):
            scores, _ = evaluate(prep, Batch([m.prep], np.zeros(4, int), [method], np.zeros(4, int), w))
            m_group, m_field, m_overall = method.split("/") if "/" in method else [method] * 3
            for s in range(4):
                expected = _reference(x, raw[s], m_group, m_field, m_overall)
                np.testing.assert_allclose(scores[s], expected.astype(np.float32), rtol=2e-6)
        with pytest.raises(UserError, match="aggregation quadratic at the field level needs positive values"):
            zs = Methodology(normalisation=parse_option("normalisation", "zscore"), denominate=False).prep
            evaluate(prep, Batch([zs], np.zeros(1, int), ["arithmetic/quadratic/arithmetic"], np.zeros(1, int), w[:1]))
    finally:
        AGGREGATIONS.unregister("quadratic")
    with pytest.raises(UserError, match='unknown aggregation "quadratic"'):
        parse_option("aggregation", "quadratic")


def _reference(x: np.ndarray, raw_w: np.ndarray, m_group: str, m_field: str, m_overall: str) -> np.ndarray:
    """Scores (city, field + overall) by weighted means over the dataset's hierarchy, weights renormalised
    within each parent here (raw_w in node order: indicators, groups, fields)."""
    ind = [str(c) for c in GTII["indicator"].values]
    grp = [str(c) for c in GTII["group"].values]
    ind_parent = [str(p) for p in GTII["indicator_parent"].values]
    grp_parent = [str(p) for p in GTII["group_parent"].values]
    n_c, n_f, _ = x.shape

    def mean(values: list[float], weights: list[float], method: str) -> float:
        total = sum(weights)
        if method == "arithmetic":
            return sum(w * v for v, w in zip(values, weights, strict=True)) / total
        return math.sqrt(sum(w * v * v for v, w in zip(values, weights, strict=True)) / total)

    def unit(code: str, c: int, f: int) -> float:
        vals = [x[c, f, k] for k, p in enumerate(ind_parent) if p == code]
        wts = [raw_w[k] for k, p in enumerate(ind_parent) if p == code]
        vals += [unit(g, c, f) for g, p in zip(grp, grp_parent, strict=True) if p == code]
        wts += [raw_w[len(ind) + k] for k, p in enumerate(grp_parent) if p == code]
        return mean(vals, wts, m_field if code == "" else m_group)

    out = np.empty((n_c, n_f + 1))
    fw = list(raw_w[len(ind) + len(grp):])
    for c in range(n_c):
        fields = [unit("", c, f) for f in range(n_f)]
        out[c, :n_f] = fields
        out[c, n_f] = mean(fields, fw, m_overall)
    return out


def test_registry_rules():
    reg = Registry("example")

    @reg.register("scaled", check=lambda k: None if k != 0 else "k must not be zero")
    def scaled(x: float, *, k: float = 2) -> float:
        """x times k."""
        return x * k

    @reg.register("column")
    def column(x: float, *, name: str = "") -> str:
        """A text parameter."""
        return name or "first"

    assert list(reg) == ["scaled", "column"] and "scaled" in reg and len(reg) == 2
    assert reg["scaled"].doc == "x times k." and reg["scaled"].defaults == (2.0,)
    assert reg["scaled"](3.0, params=reg.parse("scaled:5").params) == 15.0
    assert reg.parse("column:a,b") == Option("column", ("a,b",)) and reg.parse("column") == Option("column")
    assert reg["column"](0, params=()) == "first"
    with pytest.raises(UserError, match=r'^example "scaled:0": k must not be zero$'):
        reg.parse("scaled:0")
    with pytest.raises(UserError, match=r'^example "scaled:x": parameters must be numbers'):
        reg.parse("scaled:x")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("scaled")(scaled)
    for bad in ("a:b", "a/b", ""):
        with pytest.raises(ValueError, match="must be non-empty"):
            reg.register(bad)(scaled)
    with pytest.raises(ValueError, match="needs a default"):
        reg.register("nodefault")(lambda x, *, k: x)
