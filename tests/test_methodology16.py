"""Issue #16 §1-2: published audit designs (a nominal outside the sampled space, weighted choices, COINr's
ASEM audit), weights drawn on the simplex (Dirichlet), and the SMAA-2 measures (central weights,
confidence factors), checked against scipy and a plain reference implementation written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import engine
from engine.cli import main
from engine.design import decode, design_matrix, nominal_row, weight_schemes
from engine.kernel import Prepared
from engine.spec import Spec
from engine.validate import describe, load

ROOT = Path(__file__).resolve().parents[1]
COINR = ROOT / "scenarios" / "asem-coinr.toml"


def gtii_spec(factors: str, design: str = 'kind = "montecarlo"\nn = 64\nsampler = "random"', nominal: str = "") -> str:
    return f'name = "t16"\n[dataset]\nname = "gtii-2019"\n[nominal]\n{nominal}\n[design]\n{design}\n{factors}'


# ----------------------------------------------------------------------- 1. published audit designs

def test_coinr_spec_validates_with_the_note_and_runs(tmp_path, capsys):
    assert main(["validate", "asem-coinr"]) == 0
    stdout = capsys.readouterr().out
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "outside the sampled space" in notes[0] and "minmax:0,100" in notes[0]
    weights_row = next(line for line in stdout.splitlines() if line.strip().startswith("Weights"))
    assert "100 choices: ws001 | ws002 | ws003 | ..." in weights_row and len(weights_row) < 200
    assert "nominal (not sampled)" in weights_row

    small = tmp_path / "coinr.toml"
    small.write_text(COINR.read_text().replace("n = 1024", "n = 8"))
    out = tmp_path / "coinr.zarr"
    assert main(["run", str(small), "--out", str(out), "--synchronous", "--no-report", "--quiet"]) == 0
    stderr = capsys.readouterr().err
    assert sum("outside the sampled space" in line for line in stderr.splitlines()) == 1
    store = xr.open_zarr(out)
    assert int(store.attrs["nominal_in_space"]) == 0 and int(store.attrs["complete"]) == 1
    # the nominal scenario is build_example_coin() itself, though no scenario samples it
    nominal = engine.score(engine.load_dataset("asem")).sel(field="overall")
    np.testing.assert_array_equal(store["nominal_rank"].sel(field="overall").values, nominal["rank"].values)
    assert set(np.unique(store["normalisation"].values)) == {"minmax:1,100", "zscore:10,2"}
    assert "nominal" not in set(np.unique(store["weight_scheme"].values))
    html = engine.report(out, out=tmp_path / "coinr.html")
    text = Path(html).read_text()
    assert "The nominal methodology is outside the sampled space" in text and "SMAA-2" in text


def test_factors_that_cannot_change_anything_are_refused():
    cases = {  # gtii-2019 has no missing value; asem has one field (its weight is the only child)
        gtii_spec('[[factor]]\nkind = "imputation"\nchoices = ["none", "field_mean"]\n'
                  '[[factor]]\nkind = "aggregation"\nchoices = ["arithmetic", "geometric"]'): "identical data",
        gtii_spec('[[factor]]\nkind = "weight_scheme"\nchoices = ["nominal", "equal"]\n'  # all weights are 1
                  '[[factor]]\nkind = "aggregation"\nchoices = ["arithmetic", "geometric"]'): "identical weights",
        'name = "t"\n[dataset]\nname = "asem"\n[nominal]\nnormalisation = "minmax:1,100"\n[design]\nn = 8\n'
        '[[factor]]\nkind = "weight"\nlevel = "field"\nrange = 0.2\n': "only child",
        gtii_spec('[[factor]]\nkind = "weight"\ntarget = "ORG"\ndistribution = "dirichlet"\n'): "no two children",
    }
    for text, message in cases.items():
        with pytest.raises(engine.UserError, match=message) as err:
            load(Spec.from_text(text))
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("probs,message", [
    ("[0.5, 0.5]", "list of 3 numbers"),
    ("[0.5, 0.5, 0.0]", "probability 3 is 0.0"),
    ("[0.6, 0.5, -0.1]", "probability 3 is -0.1"),
    ("[0.5, 0.3, 0.3]", "sum to 1.1"),
    ('[0.5, 0.3, "a"]', "probability 3 is 'a'"),
    ("0.5", "list of 3 numbers"),
])
def test_probabilities_are_checked(probs, message):
    text = gtii_spec(f'[[factor]]\nkind = "aggregation"\nchoices = ["arithmetic", "geometric", "harmonic"]\n'
                     f'probabilities = {probs}\n[[factor]]\nkind = "weight"\nlevel = "field"\nrange = 0.2\n')
    with pytest.raises(engine.UserError, match=message) as err:
        Spec.from_text(text)
    assert "\n" not in str(err.value)


def test_probabilities_within_1e_9_accepted_and_normalised():
    spec = Spec.from_text(gtii_spec('[[factor]]\nkind = "exclude"\nchoices = ["none", "ORG", "KNOWLEDGE"]\n'
                                    'probabilities = [0.3333333333, 0.3333333333, 0.3333333333]\n'
                                    '[[factor]]\nkind = "weight"\nlevel = "field"\nrange = 0.2\n'))
    assert sum(spec.factors[0].probabilities) == pytest.approx(1.0, abs=1e-15)


PROBS = [0.5, 0.3, 0.15, 0.05]


@pytest.mark.parametrize("design", ['kind = "montecarlo"\nn = 16384\nsampler = "random"\nseed = 3',
                                    'kind = "montecarlo"\nn = 16384\nseed = 3',
                                    'kind = "sobol"\nn = 16384\nseed = 3'])
def test_probabilities_shift_the_design_shares(design):
    spec = Spec.from_text(gtii_spec(
        '[[factor]]\nname = "exclude"\nkind = "exclude"\nchoices = ["none", "ORG", "TALENT", "KNOWLEDGE"]\n'
        f'probabilities = {PROBS}\n[[factor]]\nkind = "weight"\ntarget = "input"\nrange = 0.5\n', design))
    prep = Prepared(spec.ds)
    x = design_matrix(spec)
    if spec.design.kind == "sobol":
        x = x[np.r_[0: len(x): spec.block_size]]  # the A rows: 2^14 independent base samples
    assert len(x) == 2 ** 14
    excluded = decode(spec, prep.tree, x, weight_schemes(spec, prep.tree)).choices["excluded"]
    counts = np.array([(excluded == c).sum() for c in ["none", "ORG", "TALENT", "KNOWLEDGE"]])
    assert stats.chisquare(counts, np.array(PROBS) * len(x)).pvalue > 1e-3
    assert stats.chisquare(counts, np.full(4, len(x) / 4)).pvalue < 1e-12  # equal shares would be rejected


# ----------------------------------------------------------------------- 2. weights on the simplex

DIRICHLET = ('[[factor]]\nname = "input weights"\nkind = "weight"\nwithin = "input"\ndistribution = "dirichlet"\n'
             'concentration = {a}\n[[factor]]\nname = "field weights"\nkind = "weight"\nlevel = "field"\n'
             'distribution = "dirichlet"\nconcentration = {a}\n')
NOMINAL = "weights = { ORG = 2.0, TALENT = 1.0, CAPITAL = 0.5, IT = 3.0 }"


def dirichlet_weights(alpha: float, n: int = 16384, kind: str = "montecarlo",
                      nominal: str = NOMINAL) -> tuple[Spec, np.ndarray]:
    design = (f'kind = "{kind}"\nn = {n}\nseed = 5' + ('\nsampler = "random"' if kind == "montecarlo" else ""))
    spec = Spec.from_text(gtii_spec(DIRICHLET.format(a=alpha), design, nominal))
    prep = Prepared(spec.ds)
    x = design_matrix(spec)
    return spec, decode(spec, prep.tree, x, weight_schemes(spec, prep.tree)).batch.weights


def test_dirichlet_weights_have_the_dirichlet_distribution():
    spec, w = dirichlet_weights(2.0)
    nodes = Prepared(spec.ds).tree.nodes
    sets = {"input": (["ORG", "TALENT", "CAPITAL"], np.array([2.0, 1.0, 0.5])),
            "fields": (["IT", "CHIP", "ENERGY", "BIO", "AERO", "MFG", "MAT"], np.array([3.0, 1, 1, 1, 1, 1, 1]))}
    for members, nominal in sets.values():
        cols = [nodes.index(m) for m in members]
        ws = w[:, cols]
        np.testing.assert_allclose(ws.sum(axis=1), 1.0, atol=1e-12)  # per parent
        ref = stats.dirichlet(2.0 * len(members) * nominal / nominal.sum())  # Dirichlet(alpha K w)
        n = len(ws)
        se_mean = np.sqrt(ref.var() / n)
        assert np.all(np.abs(ws.mean(axis=0) - ref.mean()) < 5 * se_mean)
        var = ws.var(axis=0)
        se_var = np.sqrt((((ws - ws.mean(axis=0)) ** 4).mean(axis=0) - var ** 2) / n)
        assert np.all(np.abs(var - ref.var()) < 5 * se_var)
        a = ref.alpha
        for i in range(len(members)):  # each marginal is Beta(a_i, a_0 - a_i)
            assert stats.kstest(ws[:, i], stats.beta(a[i], a.sum() - a[i]).cdf).pvalue > 1e-3
    # the output group is not drawn: its two weights stay nominal
    np.testing.assert_allclose(w[:, nodes.index("KNOWLEDGE")], 0.5)


def test_dirichlet_flat_at_alpha_1_and_nominal_as_alpha_grows():
    spec, w = dirichlet_weights(1.0, n=4096, nominal="")  # equal nominal weights: uniform on the simplex
    nodes = Prepared(spec.ds).tree.nodes
    for node, k in (("ORG", 3), ("CAPITAL", 3), ("CHIP", 7), ("MAT", 7)):  # flat Dirichlet: Beta(1, K - 1)
        assert stats.kstest(w[:, nodes.index(node)], stats.beta(1.0, k - 1.0).cdf).pvalue > 1e-3
    nominal = np.array([2.0, 1.0, 0.5]) / 3.5
    cols = [nodes.index(m) for m in ("ORG", "TALENT", "CAPITAL")]
    spread = []
    for alpha in (1e2, 1e4, 1e6, 1e9):
        _, w = dirichlet_weights(alpha, n=1024)
        spread.append(np.abs(w[:, cols] - nominal).max())
    assert spread == sorted(spread, reverse=True) and spread[-1] < 1e-3


def test_dirichlet_in_a_sobol_design_is_one_factor_group():
    spec, w = dirichlet_weights(1.0, n=64, kind="sobol")
    assert spec.groups == ["input weights", "field weights"] and len(spec.factors) == 10
    x = design_matrix(spec)
    k = spec.block_size
    assert k == 4
    a, ab1, b = x[0::k], x[1::k], x[k - 1::k]
    cols = [j for j, f in enumerate(spec.factors) if f.group == "input weights"]
    other = [j for j in range(10) if j not in cols]
    np.testing.assert_array_equal(ab1[:, cols], b[:, cols])  # the whole set swaps together
    np.testing.assert_array_equal(ab1[:, other], a[:, other])
    prep = Prepared(spec.ds)
    nom = decode(spec, prep.tree, nominal_row(spec)[None], weight_schemes(spec, prep.tree)).batch.weights[0]
    np.testing.assert_allclose(nom[[prep.tree.nodes.index(m) for m in ("ORG", "TALENT", "CAPITAL")]],
                               np.array([2.0, 1.0, 0.5]) / 3.5, atol=1e-15)


# ----------------------------------------------------------------------- SMAA-2, against a reference

SMAA_FACTORS = (DIRICHLET.format(a=1.0) + '[[factor]]\nname = "aggregation"\nkind = "aggregation"\n'
                'choices = ["arithmetic", "geometric"]\nprobabilities = [0.7, 0.3]\n'
                '[[factor]]\nname = "exclude"\nkind = "exclude"\nchoices = ["none", "ORG", "KNOWLEDGE"]\n'
                'probabilities = [0.5, 0.25, 0.25]\n')


def reference(spec: Spec, x: np.ndarray):
    """A plain implementation of the decoded scenarios (normalisation none, complete data): weights from the
    design by scipy's Gamma inverse CDF, choices by cumulative probabilities, scores as weighted means."""
    ds = spec.ds
    inds, fields = list(ds["indicator"].values), list(ds["field"].values)
    names = [f.name for f in spec.factors]
    raw = {n: 1.0 for n in [*inds, "input", "output", *fields]} | {"ORG": 2.0, "TALENT": 1.0, "CAPITAL": 0.5,
                                                                     "IT": 3.0}
    sets = [["ORG", "TALENT", "CAPITAL"], fields]
    n = len(x)
    w = {k: np.full(n, v) for k, v in raw.items()}
    for members in sets:
        shape = np.array([raw[m] for m in members])
        shape = len(members) * shape / shape.sum()  # alpha = 1
        g = np.stack([stats.gamma(shape[i]).ppf(x[:, names.index(f"w_{m}")]) for i, m in enumerate(members)], 1)
        for i, m in enumerate(members):
            w[m] = g[:, i] / g.sum(axis=1) * sum(raw[k] for k in members)
    agg = np.array(["arithmetic", "geometric"])[np.searchsorted([0.7, 1.0], x[:, names.index("aggregation")],
                                                                side="right")]
    excl = np.array(["none", "ORG", "KNOWLEDGE"])[np.searchsorted([0.5, 0.75, 1.0], x[:, names.index("exclude")],
                                                                  side="right")]
    return w, agg, excl


def node_weights(w: dict, excl: np.ndarray, nodes: list[str]) -> np.ndarray:
    """(scenario, node) weights renormalised within their parents after the exclusion."""
    w = {k: np.where(excl == k, 0.0, v) for k, v in w.items()}
    groups = {"input": ["ORG", "TALENT", "CAPITAL"], "output": ["KNOWLEDGE", "COMMERCIAL"]}
    out = {}
    for members in [*groups.values(), ["input", "output"], [n for n in nodes if n not in (*groups["input"],
                                                                                         *groups["output"],
                                                                                         "input", "output")]]:
        total = sum(w[m] for m in members)
        out.update({m: w[m] / total for m in members})
    return np.stack([out[n] for n in nodes], axis=1)


def scores(values: np.ndarray, nw: np.ndarray, agg: np.ndarray, nodes: list[str]) -> np.ndarray:
    """(scenario, city, field + overall) float32 scores: weighted arithmetic or geometric means, level by level."""
    ind = nw[:, :5] * np.where(np.arange(5) < 3, nw[:, [5]], nw[:, [6]])  # effective indicator weights
    fw = nw[:, 7:]
    geo = (agg == "geometric")[:, None, None]
    lin = np.einsum("si,cfi->scf", ind, values)
    log = np.einsum("si,cfi->scf", ind, np.log(values))
    field = np.where(geo, np.exp(log), lin)
    overall = np.where(geo[:, :, 0], np.exp(np.einsum("sf,scf->sc", fw, np.log(field))),
                       np.einsum("sf,scf->sc", fw, field))
    return np.concatenate([field, overall[:, :, None]], axis=2).astype(np.float32)


@pytest.fixture(scope="module")
def smaa_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smaa")
    spec_path = tmp / "smaa.toml"
    spec_path.write_text(gtii_spec(SMAA_FACTORS, 'kind = "montecarlo"\nn = 600\nsampler = "random"\nseed = 11\n'
                                                 'confidence_samples = 150', NOMINAL))
    out = tmp / "smaa.zarr"
    engine.run(spec_path, out=out, synchronous=True)
    return Spec.from_toml(spec_path), out


def test_central_weights_and_confidence_factors_equal_a_reference(smaa_run):
    spec, out = smaa_run
    store = xr.open_zarr(out)
    a = xr.open_zarr(out, group="analysis").load()
    assert int(store.attrs["nominal_in_space"]) == 1
    nodes = [str(v) for v in store["node"].values]
    x = store["design"].values
    w, agg, excl = reference(spec, x)
    nw = node_weights(w, excl, nodes)
    np.testing.assert_allclose(nw, store["weight"].values, atol=1e-12)
    values = spec.ds["value"].values
    s = scores(values, nw, agg, nodes)
    first = s == s.max(axis=1, keepdims=True)  # (scenario, city, field): ranks first (ties included)
    np.testing.assert_array_equal(first, store["rank"].values == 1)
    n_c, n_f = first.shape[1:]
    ref_central = np.full((n_c, n_f, len(nodes)), np.nan)
    ref_conf = np.full((n_c, n_f), np.nan)
    m = 150
    for c in range(n_c):
        for f in range(n_f):
            rows = first[:, c, f]
            if not rows.any():
                continue
            ref_central[c, f] = nw[rows].mean(axis=0)
            # the city's central weights with each of the first m scenarios' other choices
            cw = {n: np.full(m, ref_central[c, f, k]) for k, n in enumerate(nodes)}
            sc = scores(values, node_weights(cw, excl[:m], nodes), agg[:m], nodes)
            ref_conf[c, f] = np.mean(sc[:, c, f] == sc[:, :, f].max(axis=1))
    assert np.isfinite(ref_conf).sum() >= 10  # several cities rank first somewhere: a real test
    np.testing.assert_allclose(a["central_weight"].values, ref_central, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.isnan(a["confidence_factor"].values), np.isnan(ref_conf))
    np.testing.assert_allclose(a["confidence_factor"].values, ref_conf, rtol=0, atol=1e-15)
    assert a.attrs["confidence_samples"] == m
    # rank acceptability of rank 1 is the share of scenarios in which the city ranks first
    np.testing.assert_allclose(a["rank_prob"].sel(rank=1).values, first.mean(axis=0), atol=1e-15)


def test_smaa_of_a_sobol_run_uses_its_stability_rows(tmp_path):
    """A Sobol run in several chunks (central-weight sums merged in exact integers; the distributed runs of
    test_sweep compare every analysis variable with a synchronous run's) and the analysis rebuilt from the
    stored arrays agree with each other and with the A and B rows of the store."""
    spec_path = tmp_path / "sobol.toml"
    spec_path.write_text(gtii_spec(SMAA_FACTORS, 'kind = "sobol"\nn = 64\nseed = 2\nchunk = 40\n'
                                                 'confidence_samples = 64', NOMINAL))
    out = tmp_path / "sobol.zarr"
    engine.run(spec_path, out=out, synchronous=True)
    run_a = xr.open_zarr(out, group="analysis").load()
    again = engine.analyze(out)
    store = xr.open_zarr(out)
    block = store["block"].values
    stab = (block == "A") | (block == "B")
    first = store["rank"].values[stab] == 1
    wts = store["weight"].values[stab]
    ref = np.where(first.any(axis=0)[..., None],
                   np.einsum("scf,sn->cfn", first, wts) / np.maximum(first.sum(axis=0), 1)[..., None], np.nan)
    for a in (run_a, again):
        np.testing.assert_allclose(a["central_weight"].values, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(run_a["confidence_factor"].values, again["confidence_factor"].values)
    assert again.attrs["confidence_samples"] == 64


# ----------------------------------------------------------------------- remove-one level names

def test_remove_one_names_each_level():
    from engine.analysis.remove_one import remove_one

    asem = remove_one("asem")
    level = dict(zip(asem["element"].values, asem["element_level"].values, strict=True))
    assert level["Conn"] == "sub-index" and level["Physical"] == "pillar" and level["LPI"] == "indicator"
    gtii = remove_one("gtii-2019")
    level = dict(zip(gtii["element"].values, gtii["element_level"].values, strict=True))
    assert level["input"] == "group" and level["ORG"] == "indicator"


def test_bad_level_names_are_one_line_errors(tmp_path):
    meta = (ROOT / "engine" / "datasets" / "asem" / "meta.toml").read_text()
    for bad, message in (('["indicator", "pillar"]', "lists 2 names but the hierarchy has 3 levels"),
                         ('["indicator", "pillar, sub", "index"]', "without commas"), ("3", "list of level names")):
        folder = tmp_path / f"asem{len(bad)}"
        folder.mkdir()
        for f in (ROOT / "engine" / "datasets" / "asem").iterdir():
            if f.suffix == ".csv":
                (folder / f.name).write_bytes(f.read_bytes())
        (folder / "meta.toml").write_text(meta.replace('["indicator", "pillar", "sub-index", "index"]', bad))
        with pytest.raises(engine.UserError, match=message) as err:
            engine.load_dataset(folder)
        assert "\n" not in str(err.value)


def test_describe_lists_many_choices_briefly():
    spec = load("asem-coinr")
    text = describe(spec)
    assert max(map(len, text.splitlines())) < 400 and text.count("ws0") == 3
