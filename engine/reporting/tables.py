"""The report's tables as data (plain-text cells; the template escapes and lays them out): the fields, the
overall ranking city by city, the given-data sensitivity indices of Monte Carlo runs, the SMAA-2 measures
of the top cities, and the annex's run and methodology factors."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from .context import Context
from .text import pct, rank_text

TOP_CITIES = 10  # cities in the given-data and SMAA-2 tables


@dataclass
class Table:
    head: list[str]
    rows: list[list[str]]
    num: set[int] = field(default_factory=set)  # right-aligned numeric columns
    wrap: set[int] = field(default_factory=set)  # columns whose text wraps
    id: str = ""  # the table's HTML id ('' for none)

    def cls(self, j: int) -> str:
        """The CSS class of column j ('' for none)."""
        return "n" if j in self.num else ("wrap" if j in self.wrap else "")


def field_table(ctx: Context) -> Table:
    """Per field: R̄s, the correlations with the nominal ranking, interval widths, the main driver of R̄s."""
    a = ctx.a
    rows = []
    for f in ctx.fields:
        x = a.sel(field=f)
        w = x["rank_interval_width"].values
        key = np.lexsort((x["rank_abs_shift"].values, w))
        best, worst = key[0], key[-1]
        row = [ctx.field_label[f],
               f"{float(x['rbar_mean']):.2f}", f"{float(x['rbar_q05']):.2f}–{float(x['rbar_q95']):.2f}"]
        if "spearman_mean" in x:
            row += [f"{float(x['spearman_mean']):.3f}", f"{float(x['kendall_mean']):.3f}"]
        row += [rank_text(float(np.nanmedian(w))), f"{ctx.name(a['city'].values[best])} ({rank_text(w[best])})",
                f"{ctx.name(a['city'].values[worst])} ({rank_text(w[worst])})"]
        if ctx.sobol:
            st = x["ST_rbar"].values
            k = int(np.nanargmax(st))
            row.append(f"{ctx.factor_names()[k]} ({st[k]:.2f})")
        elif ctx.given:
            k = int(ctx.given_order(f)[0])
            row.append(f"{ctx.given_names()[k]} ({float(x['delta_rbar'].values[k]):.2f})")
        rows.append(row)
    head = ["field", "R̄s mean", "R̄s 5–95 %"]
    if "spearman_mean" in a:
        head += ["Spearman ρ", "Kendall τ"]
    head += ["median interval width", "most robust city (width)", "least robust city (width)"]
    if ctx.sobol:
        head.append("main driver of R̄s (ST)")
    elif ctx.given:
        head.append("main driver of R̄s (δ)")
    return Table(head, rows, num={1, 3, 4, 5} if "spearman_mean" in a else {1, 3}, id="t-fields")


def city_table(ctx: Context, fld: str = "overall") -> Table:
    """The cities in nominal order: rank statistics, P(top k) and the main driver of the rank."""
    x = ctx.a.sel(field=fld)
    order = ctx.order(fld)
    cities = ctx.a["city"].values
    const = ctx.constant(fld) if ctx.has_rank_sobol else None
    st = ctx.sens("ST", fld) if ctx.has_rank_sobol else None
    near = ctx.nearly_constant(fld) if ctx.has_rank_sobol else None
    unrel = ctx.unreliable(fld) if ctx.has_rank_sobol else None
    names = ctx.factor_names()
    tops = [int(t) for t in ctx.a["top"].values]
    given = ctx.given_sens("delta", fld) if ctx.given else None
    fixed = ctx.fixed(fld) if ctx.given else None
    rows = []
    for i in order:
        pt = x["prob_top"].values[i]
        row = [str(int(x["nominal_rank"].values[i])), ctx.name(cities[i]), rank_text(x["rank_median"].values[i]),
               f"{rank_text(x['rank_q05'].values[i])}–{rank_text(x['rank_q95'].values[i])}",
               f"{x['rank_mean'].values[i]:.2f}", f"{x['rank_abs_shift'].values[i]:.2f}", *(pct(p) for p in pt)]
        if st is not None:
            if const[i]:
                row.append("rank never moves")
            elif near[i]:
                row.append("rank almost never moves ×")
            else:
                k = int(np.nanargmax(st[i]))
                flag = " ×" if unrel[i, k] else ""
                row.append(f"{names[k]} ({min(st[i][k], 1):.2f}{flag})")
        if given is not None:
            row.append("rank never moves" if fixed[i] else
                       f"{ctx.given_names()[int(np.nanargmax(given[i]))]} ({np.nanmax(given[i]):.2f})")
        rows.append(row)
    head = ["nominal", "city", "median", "5–95 %", "mean", "mean |shift|", *(f"P(top {t})" for t in tops)]
    if st is not None:
        head.append("main driver (ST)")
    if given is not None:
        head.append("main driver (δ)")
    return Table(head, rows, num={0, 2, 3, 4, 5, *range(6, 6 + len(tops))}, id="t-cities")


def index_pm(v: float, c: float) -> str:
    """An index with its interval half-width: '0.39 ± 0.01' ('–' when undefined)."""
    return f"{v:.2f} ± {c:.2f}" if np.isfinite(v) and np.isfinite(c) else "–"


def given_rbar_table(ctx: Context) -> Table | None:
    """Monte Carlo runs: delta and S1 from given data of R̄s with their interval half-widths, every factor x
    field shown, factors by their delta on the overall R̄s."""
    if not ctx.given:
        return None
    a, names = ctx.a, ctx.given_names()
    bins = a["factor_bins"].values if "factor_bins" in a.coords else np.zeros(len(names), int)
    flds = ["overall", *(f for f in ctx.fields if f != "overall")]
    rows = []
    for j in ctx.given_order("overall"):
        row = [names[j], str(int(bins[j]))]
        for f in flds:
            x = a.sel(field=f, factor=names[j])
            row += [index_pm(float(x["delta_rbar"]), float(x["delta_rbar_conf"])),
                    index_pm(float(x["S1_given_rbar"]), float(x["S1_given_rbar_conf"]))]
        rows.append(row)
    head = ["factor", "bins", *(h for f in flds for h in (f"δ {f}", f"S1 {f}"))]
    return Table(head, rows, num=set(range(1, len(head))), id="t-given-rbar")


def given_city_table(ctx: Context, fld: str = "overall", top: int = TOP_CITIES, drivers: int = 3) -> Table | None:
    """Monte Carlo runs: the factors of largest delta on the rank of each top city of a field, with their
    delta and S1 from given data and the half-widths of their intervals."""
    if not ctx.given:
        return None
    x = ctx.a.sel(field=fld)
    order = ctx.order(fld)[:top]
    d, dc = ctx.given_sens("delta", fld), ctx.given_sens("delta_conf", fld)
    s1, s1c = ctx.given_sens("S1_given", fld), ctx.given_sens("S1_given_conf", fld)
    names, fixed = ctx.given_names(), ctx.fixed(fld)
    rows = []
    for i in order:
        row = [str(int(x["nominal_rank"].values[i])), ctx.name(ctx.a["city"].values[i]),
               f"{rank_text(x['rank_q05'].values[i])}–{rank_text(x['rank_q95'].values[i])}"]
        if fixed[i]:
            row += ["rank never moves"] + [""] * (drivers - 1)
        else:
            best = np.argsort(-np.nan_to_num(d[i], nan=-1), kind="stable")[:drivers]
            row += [f"{names[k]}: δ {index_pm(d[i, k], dc[i, k])}, S1 {index_pm(s1[i, k], s1c[i, k])}" for k in best]
        rows.append(row)
    head = ["nominal", "city", "5–95 %", *(f"{_ordinal(j + 1)} factor by δ" for j in range(drivers))]
    return Table(head, rows, num={0, 2}, id="t-given-cities")


def smaa_table(ctx: Context, fld: str = "overall", top: int = TOP_CITIES) -> Table | None:
    """SMAA-2 for the cities that rank first in a field in some scenario (most often first): the first-rank
    acceptability P(rank = 1), the confidence factor and the central weights that differ most from the nominal
    weights (see :func:`smaa_nodes`), after a row of the nominal weights."""
    if not ctx.smaa:
        return None
    x = ctx.a.sel(field=fld)
    first = ctx.rank_prob(fld)[:, 0]
    cities = [int(i) for i in np.argsort(-first, kind="stable") if first[i] > 0][:top]
    cw = x["central_weight"].values  # (city, node)
    nodes, nominal = smaa_nodes(ctx, cw[cities])
    idx = [ctx.node_names.index(n) for n in nodes]
    rows = [["", "nominal weights", "", "", *(f"{nominal[j]:.3f}" for j in idx)]]
    for i in cities:
        cf = float(x["confidence_factor"].values[i])
        rows.append([str(int(x["nominal_rank"].values[i])), ctx.name(ctx.a["city"].values[i]), f"{100 * first[i]:.1f} %",
                     f"{100 * cf:.1f} %" if np.isfinite(cf) else "–",
                     *(f"{cw[i, j]:.3f}" if np.isfinite(cw[i, j]) else "–" for j in idx)])
    head = ["nominal", "city", "P(rank 1)", "confidence factor", *(f"w {n}" for n in nodes)]
    return Table(head, rows, num=set(range(2, len(head))) | {0}, id="t-smaa")


def smaa_nodes(ctx: Context, central: np.ndarray, most: int = 8) -> tuple[list[str], np.ndarray]:
    """The nodes whose central weights the SMAA table shows: the ``most`` whose central weights (``central``
    (city, node), NaN rows skipped) differ most from their nominal weights, in the tree's order; and every
    node's nominal weight renormalised within its parent."""
    nodes, parent = ctx.node_names, ctx.node_parent
    if not nodes or len(nodes) != central.shape[1] or len(parent) != len(nodes):  # a store without the tree
        return [], np.full(central.shape[1], np.nan)
    nominal = np.array([ctx.node_weight.get(n, np.nan) for n in nodes])
    total = {p: nominal[[q == p for q in parent]].sum() for p in set(parent)}
    nominal = np.array([w / total[p] if total[p] else np.nan for w, p in zip(nominal, parent, strict=True)])
    rows = central[~np.isnan(central).any(axis=1)]
    if not len(rows):
        return [], nominal
    shift = np.abs(rows - nominal[None, :]).max(axis=0)
    keep = sorted(j for j in np.argsort(-shift, kind="stable")[:most] if shift[j] > 1e-9)
    return [nodes[j] for j in keep], nominal


def _ordinal(k: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


def factor_table(ctx: Context) -> Table | None:
    """The methodology factors of the spec (None: the run has none)."""
    f = ctx.factors
    if not f or "factor" not in f.dims:
        return None
    rows = []
    for j in range(f.sizes["factor"]):
        def g(name, j=j):
            return str(f[name].values[j]) if name in f else ""
        kind, node, rng = g("factor_kind"), g("factor_node"), f["factor_range"].values[j] if "factor_range" in f else 0
        if kind == "weight" and g("factor_distribution") == "dirichlet":
            nw = ctx.node_weight.get(node)
            nominal = f"{nw:g}" if nw is not None else ""
            spread = f"Dirichlet, Gamma shape {float(f['factor_shape'].values[j]):.3g}"
        elif kind == "weight":
            nw = ctx.node_weight.get(node)
            nominal = f"{nw:g}" if nw is not None else ""
            spread = f"× U[{1 - rng:g}, {1 + rng:g}] (±{100 * rng:g} %)"
        else:
            nominal = g("factor_nominal")
            spread = ""
        choices = g("factor_choices").replace("|", ", ")
        rows.append([g("factor"), kind, node, spread, choices, nominal, g("factor_group")])
    return Table(["factor", "kind", "node", "range", "choices", "nominal", "group"], rows, wrap={4})


def run_table(ctx: Context) -> Table:
    """The run: spec, dataset, design, sizes, hashes, times, versions, store."""
    at = ctx.attrs
    try:
        versions = ", ".join(f"{k} {v}" for k, v in json.loads(at.get("versions", "{}")).items())
    except ValueError:
        versions = str(at.get("versions", ""))
    design = str(at.get("design_kind", ""))
    if design == "sobol":
        design += f" (Saltelli; second order: {'yes' if at.get('second_order') else 'no'})"
    elif at.get("sampler"):
        design += f" (sampler: {at.get('sampler')})"
    a = ctx.a.attrs
    rows = [
        ("spec", f"{at.get('spec_name', '')}: {at.get('spec_source', '')}"),
        ("description", spec_description(at)),
        ("dataset", f"{at.get('dataset', '')}: {ctx.dataset.get('title', '')}"
                    + ("  [SYNTHETIC]" if ctx.synthetic else "  [real data]")),
        ("dataset description", ctx.dataset.get("description", "")),
        ("dataset source", ctx.dataset.get("source", "")),
        ("shape", f"{ctx.a.sizes['city']} cities × {ctx.n_fields} field(s) + overall"),
        ("design", design),
        ("N (design n)", f"{int(at.get('design_n', 0)):,}"),
        ("seed", str(at.get("seed", ""))),
        ("scenarios", f"{int(at.get('n_scenarios', 0)):,}"),
        ("stability scenarios", f"{int(a.get('n_stability_scenarios', 0)):,}"
                                + (" (A and B rows of the Saltelli design)" if design.startswith("sobol") else "")),
        ("factors", f"{ctx.factors.sizes.get('factor', 0)}" + (f" in {ctx.a.sizes[ctx.sdim]} groups"
                                                                if ctx.sdim == "factor_group" else "")),
        ("store mode", str(at.get("store_mode", ""))),
        ("Sobol estimators", a.get("estimators", "") + (f"; {a.get('num_resamples')} resamples, "
                                                        f"{float(a.get('conf_level', 0.95)):.0%} intervals"
                                                        if ctx.sobol else "")),
        ("percentiles", a.get("percentile_convention", "")),
        ("data hash (sha256)", at.get("data_hash", "")),
        ("spec hash (sha256)", at.get("spec_hash", "")),
        ("created", at.get("created", "")),
        ("finished", at.get("finished", "")),
        ("versions", versions),
        ("store", str(ctx.path)),
    ]
    return Table(["", ""], [[str(k), str(v)] for k, v in rows if v not in ("", None)], wrap={1})


def spec_description(at: dict) -> str:
    """The ``description`` line of the spec file the run recorded ('' when it has none)."""
    m = re.search(r'^description\s*=\s*"(.*)"\s*$', at.get("spec_toml", ""), flags=re.M)
    return m.group(1) if m else ""
