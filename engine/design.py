"""Designs: unit-hypercube samples (one row per scenario) and their decoding into methodologies.

* Monte Carlo: scrambled Sobol' points (``sampler = "sobol"``) or pseudo-random numbers (``"random"``).
* Sobol: the Saltelli design of ``SALib.sample.sobol.sample`` (same base sequence, same row layout:
  per base sample A, AB_1..AB_D, [BA_1..BA_D], B), built with array operations instead of SALib's
  per-element Python loop, and equal to it element for element (tested).

Everything here is a pure function of the spec (and its seed).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .data import Tree
from .kernel import Batch, Prepared, evaluate
from .methods import Prep, parse_option
from .methods.weights import pca_weights
from .spec import AGG_LEVELS, Spec

DISCRETE = ("normalisation", "aggregation", "outlier", "imputation", "exclude", "weight_scheme")


def base_sequence(d: int, n: int, seed: int, skip: int = 0) -> np.ndarray:
    """The first ``n`` points (after ``skip``) of a scrambled Sobol' sequence in ``d`` dimensions."""
    from scipy.stats import qmc  # imported on first use: scipy.stats takes ~0.5 s to import

    qrng = qmc.Sobol(d=d, scramble=True, seed=seed)
    if skip:
        qrng.fast_forward(int(skip))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # balance warning for n not a power of two
        return qrng.random(n)


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
            multipliers[:, tree.nodes.index(f.node)] *= f.multiplier(u)
        elif f.kind == "aggregation":
            for lv in [f.level] if f.level else AGG_LEVELS:
                level_choices[lv], level_idx[lv] = list(f.choices), f.index(u)
        else:
            options[f.kind] = list(f.choices)
            idx[f.kind] = f.index(u)
    options["aggregation"], idx["aggregation"] = _methods(level_choices, level_idx)
    scheme_names = scheme_order(spec)
    scheme_idx = np.array([scheme_names.index(s) for s in options["weight_scheme"]])[idx["weight_scheme"]]
    w = schemes[scheme_idx] * multipliers
    excl = np.array([tree.nodes.index(e) if e != "none" else -1 for e in options["exclude"]])[idx["exclude"]]
    rows = np.flatnonzero(excl >= 0)
    w[rows, excl[rows]] = 0.0
    w = tree.renormalise(w)

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
    from itertools import product

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
    """A design row that decodes to the nominal methodology (u = 0.5 for weights, the nominal bin)."""
    row = np.full(len(spec.factors), 0.5)
    for j, f in enumerate(spec.factors):
        if f.discrete:
            row[j] = (f.choices.index(f.nominal) + 0.5) / len(f.choices)
    return row


def auto_chunk(spec: Spec, n_cities: int, n_fields: int, target_bytes: float = 16e6, min_blocks: int = 8) -> int:
    """Scenarios per task: about ``target_bytes`` of scores + ranks, in whole Saltelli blocks, and (automatic
    chunks of a Sobol design) at least ``min_blocks`` blocks: each task's Sobol' sums pass once over the
    bootstrap sums of every output (M x terms x resamples), so at large sizes a task of 1-2 blocks would be
    bound by that memory traffic rather than by its arithmetic."""
    if spec.design.chunk:
        per = spec.design.chunk
    else:
        per = max(1, int(target_bytes // (n_cities * (n_fields + 1) * 6)))
        if spec.design.kind == "sobol":
            per = max(per, min_blocks * spec.block_size)
    block = spec.block_size
    per = max(block, per // block * block)
    return min(per, spec.n_scenarios)


def check_combinations(spec: Spec) -> None:
    """Every preparation x aggregation combination that can occur must be computable (e.g. geometric
    needs positive values): each is evaluated once with nominal weights."""
    prep = Prepared(spec.ds)
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
            evaluate(prep, Batch([p], zero, [m], zero, w))
