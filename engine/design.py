"""Designs: unit-hypercube samples (one row per scenario) and their decoding into methodologies.

* Monte Carlo: scrambled Sobol' points (``sampler = "sobol"``) or pseudo-random numbers (``"random"``).
* Sobol: the Saltelli design of ``SALib.sample.sobol.sample`` (same base sequence, same row layout:
  per base sample A, AB_1..AB_D, [BA_1..BA_D], B), built with array operations instead of SALib's
  per-element Python loop, and equal to it element for element (tested).

Everything here is a pure function of the spec (and its seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from .data import Tree
from .errors import UserError
from .kernel import Batch, Prepared, evaluate, shared
from .methods import Prep, parse_option
from .methods.weights import pca_weights
from .sequence import sobol_points
from .spec import AGG_LEVELS, Factor, Spec

DISCRETE = ("normalisation", "aggregation", "outlier", "imputation", "exclude", "weight_scheme")


def base_sequence(d: int, n: int, seed: int, skip: int = 0) -> np.ndarray:
    """The first ``n`` points (after ``skip``) of a scrambled Sobol' sequence in ``d`` dimensions (those of
    ``scipy.stats.qmc.Sobol(d, scramble=True, seed=seed)``)."""
    return sobol_points(d, n, int(seed), int(skip))


def saltelli(n_factors: int, group_of: np.ndarray | None, n: int, second_order: bool, seed: int,
             skip: int = 0) -> np.ndarray:
    """The Saltelli design exactly as SALib builds it, (n * block, n_factors)."""
    base = base_sequence(2 * n_factors, n, seed, skip)
    a, b = base[:, :n_factors], base[:, n_factors:]
    group_of = np.arange(n_factors) if group_of is None else group_of
    n_groups = int(group_of.max()) + 1
    swap = group_of[None, :] == np.arange(n_groups)[:, None]  # (group, factor)
    ab = np.where(swap[None], b[:, None, :], a[:, None, :])
    parts = [a[:, None, :], ab]
    if second_order:
        parts.append(np.where(swap[None], a[:, None, :], b[:, None, :]))
    parts.append(b[:, None, :])
    return np.concatenate(parts, axis=1).reshape(-1, n_factors)


def block_labels(names: list[str], second_order: bool) -> list[str]:
    """Row labels within one Saltelli block: 'A', 'AB_<name>'..., ['BA_<name>'...], 'B'."""
    ba = [f"BA_{n}" for n in names] if second_order else []
    return ["A", *(f"AB_{n}" for n in names), *ba, "B"]


def stability_rows(rows: np.ndarray, kind: str, block_size: int) -> np.ndarray:
    """The rows used for rank statistics: all (Monte Carlo) or the A and B rows of each Saltelli block."""
    if kind != "sobol":
        return rows
    pos = rows % block_size
    return rows[(pos == 0) | (pos == block_size - 1)]


def design_rows(spec: Spec, a: int, b: int) -> np.ndarray:
    """Rows [a, b) of the unit-hypercube design (one row per scenario, one column per factor), computed
    without the others: Sobol' points are fast-forwarded, the pseudo-random stream is advanced, so any
    chunking gives the same rows."""
    d = len(spec.factors)
    des = spec.design
    if des.kind == "sobol":
        k = spec.block_size
        j0, j1 = a // k, -(-b // k)
        names = spec.groups
        group_of = np.array([names.index(f.group) for f in spec.factors]) if spec.grouped else None
        rows = saltelli(d, group_of, j1 - j0, des.second_order, des.seed, skip=j0)
        return rows[a - j0 * k: b - j0 * k]
    if des.sampler == "random":
        bits = np.random.PCG64(des.seed)
        bits.advance(int(a) * d)  # one 64-bit draw per double
        return np.random.Generator(bits).random((b - a, d))
    return base_sequence(d, b - a, des.seed, skip=a)


def design_matrix(spec: Spec) -> np.ndarray:
    """The whole design."""
    return design_rows(spec, 0, spec.n_scenarios)


def row_labels(spec: Spec, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """``block`` label and base ``sample`` index of rows [a, b) (Monte Carlo: 'MC', the row index)."""
    rows = np.arange(a, b)
    if spec.design.kind != "sobol":
        return np.full(b - a, "MC"), rows
    labels = np.array(block_labels(spec.groups, spec.design.second_order))
    return labels[rows % len(labels)], rows // len(labels)


@dataclass
class Decoded:
    """A block of scenarios decoded: the kernel batch plus the choice strings to store."""

    batch: Batch
    choices: dict[str, np.ndarray]  # kind -> (scenario,) str


def decode(spec: Spec, tree: Tree, x: np.ndarray, schemes: np.ndarray) -> Decoded:
    """Turn design rows ``x`` (scenario, factor) into methodologies; ``schemes`` from ``weight_schemes``."""
    n = len(x)
    nom = spec.nominal
    idx = {kind: np.zeros(n, dtype=np.int64) for kind in DISCRETE}
    options = {
        "normalisation": [str(nom.normalisation)], "aggregation": [nom.aggregation.name],
        "outlier": [str(nom.outlier)], "imputation": [str(nom.imputation)],
        "exclude": [nom.exclude], "weight_scheme": [nom.weight_scheme],
    }
    multipliers = np.ones((n, len(tree.nodes)))
    level_choices = {lv: [nom.aggregation.name] for lv in AGG_LEVELS}
    level_idx = {lv: np.zeros(n, dtype=np.int64) for lv in AGG_LEVELS}
    for j, f in enumerate(spec.factors):
        u = x[:, j]
        if f.kind == "weight":
            if not f.dirichlet:
                multipliers[:, tree.nodes.index(f.node)] *= np.where(np.isnan(u), 1.0, f.multiplier(u))
        elif f.kind == "aggregation":
            for lv in [f.level] if f.level else AGG_LEVELS:
                level_choices[lv], level_idx[lv] = _choice_index(f, u)
        else:
            options[f.kind], idx[f.kind] = _choice_index(f, u)
    options["aggregation"], idx["aggregation"] = _methods(level_choices, level_idx)
    scheme_names = scheme_order(spec)
    scheme_idx = np.array([scheme_names.index(s) for s in options["weight_scheme"]])[idx["weight_scheme"]]
    w = schemes[scheme_idx] * multipliers
    for cols, nodes, shape in dirichlet_sets(spec, tree):
        # the set's shares replace its weights; its total (the parent's share of the set) stays the scheme's
        w[:, nodes] = dirichlet_shares(x[:, cols], shape) * w[:, nodes].sum(axis=1, keepdims=True)
    w = exclude(tree, w, np.array(options["exclude"])[idx["exclude"]])

    prep_kinds = ("normalisation", "outlier", "imputation")
    sizes = [len(options[k]) for k in prep_kinds]
    key = (idx["normalisation"] * sizes[1] + idx["outlier"]) * sizes[2] + idx["imputation"]
    uniq, prep_idx = np.unique(key, return_inverse=True)
    combos = zip(uniq // (sizes[1] * sizes[2]), uniq // sizes[2] % sizes[1], uniq % sizes[2], strict=True)
    preps = [Prep(*(parse_option(k, options[k][c]) for k, c in zip(prep_kinds, row, strict=True)),
                  denominate=nom.denominate) for row in combos]
    batch = Batch(preps=preps, prep_idx=prep_idx.ravel(), methods=options["aggregation"],
                  method_idx=idx["aggregation"], weights=w)
    choices = {k: np.array(options[k])[idx[k]] for k in DISCRETE}
    choices["excluded"] = choices.pop("exclude")
    return Decoded(batch, choices)


def _choice_index(f: Factor, u: np.ndarray) -> tuple[list[str], np.ndarray]:
    """A discrete factor's options and each scenario's index into them; u = NaN (the nominal row) takes the
    nominal, appended to the options when it is not among the choices."""
    options = list(f.choices)
    nan = np.isnan(u)
    if not nan.any():
        return options, f.index(u)
    if f.nominal not in options:
        options.append(f.nominal)
    return options, np.where(nan, options.index(f.nominal), f.index(np.where(nan, 0.0, u)))


def dirichlet_sets(spec: Spec, tree: Tree) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(design columns, node indices, Gamma shapes) of every sibling set a Dirichlet factor draws."""
    sets: dict[str, list[int]] = {}
    for j, f in enumerate(spec.factors):
        if f.kind == "weight" and f.dirichlet:
            sets.setdefault(f.joint, []).append(j)
    return [(np.array(cols), np.array([tree.nodes.index(spec.factors[j].node) for j in cols]),
             np.array([spec.factors[j].shape for j in cols])) for cols in sets.values()]


def dirichlet_shares(u: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Dirichlet(shape) shares from independent uniforms (scenario, sibling): each column's Gamma(shape_i, 1)
    variate by its inverse CDF, divided by the row's sum. Rows of NaN (the nominal row) get the mean
    shape / sum(shape), the nominal shares."""
    from scipy.special import gammaincinv

    mean = shape / shape.sum()
    g = gammaincinv(shape[None, :], np.where(np.isnan(u), 0.5, u))
    total = g.sum(axis=1, keepdims=True)
    ok = (total > 0) & np.isfinite(total) & ~np.isnan(u).any(axis=1, keepdims=True)
    return np.where(ok, g / np.where(ok, total, 1.0), mean[None, :])


def exclude(tree: Tree, w: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Raw weights (scenario, node) with each scenario's excluded indicator ("none": none) at zero,
    renormalised within their parents."""
    excl = np.array([tree.nodes.index(e) if e != "none" else -1 for e in excluded], dtype=np.int64)
    rows = np.flatnonzero(excl >= 0)
    w = np.array(w, dtype=np.float64, copy=True)
    w[rows, excl[rows]] = 0.0
    return tree.renormalise(w)


def _methods(choices: dict[str, list[str]], idx: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """The kernel's method strings present (``m`` when every level uses m, else ``group/field/overall``)
    and each scenario's index into them."""
    g, f, o = (choices[lv] for lv in AGG_LEVELS)
    key = (idx["group"] * len(f) + idx["field"]) * len(o) + idx["overall"]
    uniq, inverse = np.unique(key, return_inverse=True)
    names = []
    for k in uniq:
        parts = (g[k // (len(f) * len(o))], f[k // len(o) % len(f)], o[k % len(o)])
        names.append(parts[0] if len(set(parts)) == 1 else "/".join(parts))
    return names, inverse.ravel()


def aggregation_methods(spec: Spec) -> list[str]:
    """Every method string the spec's aggregation factors can produce."""
    per_level = {lv: [spec.nominal.aggregation.name] for lv in AGG_LEVELS}
    for f in spec.factors:
        if f.kind == "aggregation":
            for lv in [f.level] if f.level else AGG_LEVELS:
                per_level[lv] = list(f.choices)
    if not any(f.kind == "aggregation" and f.level for f in spec.factors):
        return list(dict.fromkeys(per_level["group"]))
    combos = product(*(per_level[lv] for lv in AGG_LEVELS))
    return sorted({c[0] if len(set(c)) == 1 else "/".join(c) for c in combos})


def scheme_order(spec: Spec) -> list[str]:
    return ["nominal", "equal", "pca", *spec.weight_sets]


def weight_schemes(spec: Spec, tree: Tree, pca_data: np.ndarray | None = None) -> np.ndarray:
    """Raw (not yet renormalised) node weights of every named scheme, (scheme, node)."""
    nominal = tree.nominal.copy()
    for node, w in spec.nominal.weights.items():
        nominal[tree.nodes.index(node)] = w
    out = {"nominal": nominal, "equal": np.ones(len(tree.nodes))}
    needs_pca = any(f.kind == "weight_scheme" and "pca" in f.choices for f in spec.factors) \
        or spec.nominal.weight_scheme == "pca"
    out["pca"] = pca_weights(tree, pca_data, nominal) if needs_pca and pca_data is not None else nominal
    for name, ws in spec.weight_sets.items():
        w = nominal.copy()
        for node, v in ws.items():
            w[tree.nodes.index(node)] = v
        out[name] = w
    return np.stack([out[k] for k in scheme_order(spec)])


def nominal_row(spec: Spec) -> np.ndarray:
    """A design row that decodes to the nominal methodology: NaN in every column (see :func:`decode`), which
    also reaches a nominal outside the sampled choices and the mean of a Dirichlet factor."""
    return np.full(len(spec.factors), np.nan)


def auto_chunk(spec: Spec, n_cities: int, n_fields: int, target_bytes: float = 16e6, min_blocks: int = 8) -> int:
    """Scenarios per task: about ``target_bytes`` of scores + ranks, in whole Saltelli blocks, and (automatic
    chunks of a Sobol design) at least ``min_blocks`` blocks, as long as that stays within twice
    ``target_bytes``: each task's Sobol' sums pass once over the bootstrap sums of every output (M x terms x
    resamples), so a task of 1-2 blocks would be bound by that memory traffic rather than by its
    arithmetic; at the large size (2000 cities x 21 fields, 27 factors) 4 blocks already take ~30 MB, and a
    worker holding its share of those sums has little memory to spare."""
    if spec.design.chunk:
        per = spec.design.chunk
    else:
        scenario_bytes = n_cities * (n_fields + 1) * 6
        per = max(1, int(target_bytes // scenario_bytes))
        if spec.design.kind == "sobol":
            per = max(per, min(min_blocks * spec.block_size, int(2 * target_bytes // scenario_bytes)))
    block = spec.block_size
    per = max(block, per // block * block)
    return min(per, spec.n_scenarios)


def check_combinations(spec: Spec) -> None:
    """Every preparation x aggregation combination that can occur must be computable (e.g. geometric
    needs positive values): each is evaluated once with nominal weights. Then every factor must be able to
    change something (:func:`check_effects`)."""
    prep = shared(spec.ds)
    norms = spec.choices_of("normalisation") or [str(spec.nominal.normalisation)]
    outs = spec.choices_of("outlier") or [str(spec.nominal.outlier)]
    imps = spec.choices_of("imputation") or [str(spec.nominal.imputation)]
    preps = [Prep(parse_option("normalisation", n), parse_option("outlier", o), parse_option("imputation", i),
                  spec.nominal.denominate) for n in norms for o in outs for i in imps]
    methods = aggregation_methods(spec)
    w = prep.tree.renormalise(weight_schemes(spec, prep.tree)[:1])
    zero = np.zeros(1, dtype=np.int64)
    for p in preps:
        for m in methods:
            scores, _ = evaluate(prep, Batch([p], zero, [m], zero, w))
            if np.isinf(scores).any():  # stored as float32: a score beyond its range would be stored as inf
                raise UserError(f"{spec.source}: normalisation {p.normalisation} with aggregation {m} gives "
                                f"infinite scores (beyond float32's range, 3.4e38); use smaller normalisation bounds")
    check_effects(spec, prep)


PREP_KINDS = ("normalisation", "outlier", "imputation")


def check_effects(spec: Spec, prep: Prepared) -> None:
    """Refuse a factor whose choices cannot change any result, the trap of COINr issue #60 (an audit varying
    a step the index does not use): preparation choices that give identical data under every combination of
    the other preparation choices (e.g. imputations of data with nothing missing), or weight schemes that
    give identical renormalised weights. (A nominal outside the choices is allowed: it changes nothing
    about what the scenarios sample.)"""
    per_kind = {k: spec.choices_of(k) or [str(getattr(spec.nominal, k))] for k in PREP_KINDS}
    for f in spec.factors:
        if f.kind in PREP_KINDS:
            others = [k for k in PREP_KINDS if k != f.kind]
            combos = [dict(zip(others, c, strict=True)) for c in product(*(per_kind[k] for k in others))]
            if not any(_differ([prep.data(_prep(spec, {**c, f.kind: choice})) for choice in f.choices])
                       for c in combos):
                hint = {"imputation": "nothing is missing to impute", "outlier": "no indicator needs treatment"}
                raise UserError(f'{spec.source}: factor "{f.name}": its choices ({", ".join(f.choices)}) give '
                                f"identical data ({hint.get(f.kind, 'the same normalised values')}), so it cannot "
                                f"change any result; remove it or choose alternatives that differ")
        elif f.kind == "weight_scheme":
            schemes = weight_schemes(spec, prep.tree, prep.data(spec.nominal.prep))
            order = scheme_order(spec)
            w = prep.tree.renormalise(schemes[[order.index(c) for c in f.choices]])
            if not _differ(list(w)):
                raise UserError(f'{spec.source}: factor "{f.name}": its weight schemes ({", ".join(f.choices)}) '
                                f"give identical weights, so it cannot change any result; remove it or choose "
                                f"schemes that differ")


def _prep(spec: Spec, options: dict[str, str]) -> Prep:
    return Prep(*(parse_option(k, options[k]) for k in PREP_KINDS), denominate=spec.nominal.denominate)


def _differ(arrays: list[np.ndarray]) -> bool:
    return any(not np.array_equal(arrays[0], a, equal_nan=True) for a in arrays[1:])
