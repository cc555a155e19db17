"""Every figure of the report, one function each (it returns a matplotlib ``Figure``), and :func:`plan`:
which figures a run gets, in page order, with their titles, captions and the page section they go in.

To add a figure: write ``def my_figure(ctx, ...) -> Figure`` here and add it to :func:`plan` with its
section (``ranks``, ``sensitivity``, ``by_city`` or ``robustness``): the page shows it there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib.patches import Rectangle

from .canvas import ANNOTATE_MAX, HEAT_TICK, Layout, Prefixed, category_labels, heat, text_width
from .context import CONF_LIMIT, Context
from .text import rank_text

TOP_ACCEPT = 15  # cities in the rank-acceptability matrix
MAX_BAR_FACTORS = 20  # factors in the bar chart of the given-data indices of R̄s (the largest delta)
MAX_HEAT_FACTORS = 20  # factors in the given-data heat maps (the most influential)
ROW = 0.17  # inches per city row
C_BAR, C_NOM, C_MED = "#9ecae1", "#08306b", "#e6550d"
SECTIONS = ("ranks", "sensitivity", "by_city", "robustness")  # the page's sections that show figures


@dataclass(frozen=True)
class FigurePlan:
    """One figure to draw: ``draw(ctx, *args)``, with what the page says about it."""

    key: str
    slug: str  # file name of --png-dir and the figure's anchor: '01-rank-it'
    section: str  # where the page shows it: one of SECTIONS
    title: str
    caption: str
    draw: Callable
    args: tuple = ()
    wide: bool = False
    data: tuple[str, ...] = ()  # the variables of the store's analysis group it draws (the page names them)


RANK_VARS = ("nominal_rank", "rank_median", "rank_q05", "rank_q95")
SOBOL_CITY = ("ST", "ST_conf", "S1", "S1_conf", "constant")
GIVEN_CITY = ("delta", "delta_conf", "S1_given", "S1_given_conf", "rank_prob_max")
GIVEN_RBAR = ("delta_rbar", "delta_rbar_conf", "S1_given_rbar", "S1_given_rbar_conf")


def plan(ctx: Context) -> list[FigurePlan]:
    """The figures of this run, in page order."""
    out: list[FigurePlan] = []

    def add(key, section, draw, args, title, caption="", wide=False, data=()):
        assert section in SECTIONS, section
        out.append(FigurePlan(key, f"{len(out) + 1:02d}-{_slug(key)}", section, title, caption, draw, args, wide,
                              tuple(data)))

    for fld in ctx.fields:
        add(f"rank {fld}", "ranks", rank_uncertainty, (fld,), f"Rank uncertainty: {ctx.field_label[fld]}",
            data=RANK_VARS)
    if ctx.has_rank_sobol:
        for fld in ctx.fields:
            add(f"sobol {fld}", "by_city", sobol_heatmap, (fld,), f"What drives each rank: {ctx.field_label[fld]}",
                wide=True, data=SOBOL_CITY)
    if ctx.sobol:
        add("rbar", "sensitivity", rbar_bars, ("overall",), "What drives the mean rank shift R̄s (overall)",
            f"S1 and ST of R̄s (mean over cities of |rank − nominal rank|) with {ctx.a.attrs.get('conf_level', 0.95):.0%} "
            "bootstrap intervals. S1: share of the variance explained by the factor alone; ST: including its "
            "interactions.", data=("ST_rbar", "ST_conf_rbar", "S1_rbar", "S1_conf_rbar"))
        if len(ctx.fields) > 1:
            add("rbar fields", "sensitivity", rbar_fields, (), "ST of R̄s by field",
                "Total-effect index of each factor on the mean rank shift of each field's ranking.",
                data=("ST_rbar",))
    if ctx.given:
        k = len(ctx.given_names())
        some = f"the {MAX_BAR_FACTORS} of {k} factors with the largest δ; " if k > MAX_BAR_FACTORS else ""
        add("given rbar", "sensitivity", given_rbar_bars, ("overall",),
            "What drives the mean rank shift R̄s (overall, from the Monte Carlo scenarios)",
            f"Borgonovo's δ and the first-order index S1 of R̄s (mean over cities of |rank − nominal rank|) with "
            f"{ctx.conf_level:.0%} bootstrap intervals, factors by δ ({some}every factor in the table below).",
            data=GIVEN_RBAR)
        if len(ctx.fields) > 1:
            some = f" (the {MAX_HEAT_FACTORS} of {k} with the largest δ overall)" if k > MAX_HEAT_FACTORS else ""
            add("given rbar fields", "sensitivity", given_rbar_fields, (), "δ and S1 of R̄s by field",
                f"δ (left) and S1 (right) of each factor{some} on the mean rank shift of each field's ranking.",
                wide=True, data=GIVEN_RBAR)
        which = (f"the {MAX_HEAT_FACTORS} of the {k} factors with the largest mean δ over the cities, largest first"
                 if k > MAX_HEAT_FACTORS else "every factor, by its mean δ over the cities")
        for fld in ctx.fields:
            add(f"given {fld}", "by_city", given_heatmap, (fld,), f"What drives each rank: {ctx.field_label[fld]}",
                f"δ (left) and S1 (right) of every city's rank for {which}.", wide=True, data=GIVEN_CITY)
    if len(ctx.fields) > 1:
        add("width", "robustness", width_map, (), "Rank-interval width by field",
            "Width of the 5–95 % rank interval of every city in every field (0 = the rank never moves in 90 % "
            "of scenarios); cities in overall nominal order.", data=("rank_interval_width", "nominal_rank"))
    add("acceptability", "robustness", acceptability, ("overall",), "Rank acceptability (overall)",
        "P(rank = r) in % for the top cities of the overall ranking; orange boxes mark the nominal rank.",
        data=("rank_prob", "nominal_rank") if "rank_prob" in ctx.a else ("rank_prob_values", "nominal_rank"))
    if "pair_prob" in ctx.a:
        add("pairs", "robustness", pairs, ("overall",), "Who ranks above whom (overall)",
            "P(row city ranks strictly above column city) over the scenarios, in %, for the top 10 cities.",
            data=("pair_prob",))
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _city_labels(ctx: Context, fld: str, order: np.ndarray, suffix: dict[int, str] | None = None) -> Prefixed:
    """'12  Tokyo': the nominal rank in a field ('–' unscored) and the city's name (with its suffix)."""
    nom = ctx.a["nominal_rank"].sel(field=fld).values
    cities = ctx.a["city"].values
    ranks = tuple(str(int(nom[i])) if int(nom[i]) > 0 else "–" for i in order)
    return Prefixed(ranks, tuple(f"{ctx.name(cities[i])}{(suffix or {}).get(int(i), '')}" for i in order))


def _fmt_index(v: float) -> str:
    return f"{v:.2f}".lstrip("0") if v >= 0.005 else ""


# ------------------------------------------------------------------------------------------ figures


def rank_uncertainty(ctx: Context, fld: str):
    """JRC-style rank chart of a field: nominal and median rank and the 5-95 % interval of every city."""
    a = ctx.a.sel(field=fld)
    order = ctx.order(fld)
    n = len(order)
    nom = a["nominal_rank"].values[order].astype(float)
    nom[nom <= 0] = np.nan
    q05, q95, med = (a[v].values[order] for v in ("rank_q05", "rank_q95", "rank_median"))
    labels = _city_labels(ctx, fld, order)
    left = text_width(labels, 8) + 0.15
    L = Layout(left, [max(4.9 - left - 0.3, 3.0)], ROW * n + 0.1, top=0.75, bottom=0.5, right=0.3)
    ax = L.axes[0]
    y = np.arange(n)
    lo, hi = q05.copy(), q95.copy()
    flat = hi - lo < 0.5  # a zero-width interval still shows a short bar
    lo[flat] -= 0.25
    hi[flat] += 0.25
    ax.hlines(y, lo, hi, color=C_BAR, lw=5, zorder=1, label="5–95 % interval")
    ax.scatter(med, y, marker="D", s=18, color=C_MED, zorder=3, label="median rank", linewidths=0)
    ax.scatter(nom, y, marker="o", s=14, color=C_NOM, zorder=4, label="nominal rank", linewidths=0)
    ax.set_axisbelow(True)
    category_labels(ax, "y", labels, 8)
    ax.set_ylim(n - 0.4, -0.6)
    ax.set_xlim(0.3, int(ctx.a.sizes["rank_value"]) + 0.7)
    ax.xaxis.set_ticks_position("both")
    ax.tick_params(axis="x", labeltop=True, labelsize=8)
    ax.set_xlabel("rank (1 = best)", fontsize=8.5, labelpad=2)
    ax.grid(axis="x", color="#e0e0e0", lw=0.6)
    ax.legend(loc="lower left", fontsize=7, frameon=True, framealpha=0.9, handlelength=1.2)
    L.title(ctx.field_label[fld])
    return L.fig


def sobol_heatmap(ctx: Context, fld: str):
    """City x factor heat maps of the ST and S1 indices of every city's rank in a field."""
    order = ctx.order(fld)
    panels = [(ctx.sens(v, fld)[order], ctx.sens(f"{v}_conf", fld)[order], title)
              for v, title in (("ST", "ST (total effect)"), ("S1", "S1 (first order)"))]
    return _city_factor_heatmap(ctx, fld, order, ctx.factor_names(), panels, ctx.constant(fld)[order],
                                ctx.nearly_constant(fld)[order], "Sobol index of the rank")


def given_heatmap(ctx: Context, fld: str):
    """City x factor heat maps of Borgonovo's delta and the first-order index from given data of every city's
    rank in a field (Monte Carlo runs), the most influential factors of the field first."""
    order = ctx.order(fld)
    cols = given_columns(ctx, fld)
    names = [ctx.given_names()[j] for j in cols]
    panels = [(ctx.given_sens(v, fld)[order][:, cols], ctx.given_sens(f"{v}_conf", fld)[order][:, cols], title)
              for v, title in (("delta", "δ (moment-independent)"), ("S1_given", "S1 (first order)"))]
    return _city_factor_heatmap(ctx, fld, order, names, panels, ctx.fixed(fld)[order], ctx.near_fixed(fld)[order],
                                "index of the rank (given data)")


def given_columns(ctx: Context, fld: str) -> np.ndarray:
    """The factors of a field's given-data heat map: by decreasing mean delta of the cities' ranks, at most
    :data:`MAX_HEAT_FACTORS`."""
    d = np.nan_to_num(ctx.given_sens("delta", fld), nan=0.0)
    d = d[~ctx.fixed(fld)] if (~ctx.fixed(fld)).any() else d
    return np.argsort(-d.mean(axis=0), kind="stable")[:MAX_HEAT_FACTORS]


def _city_factor_heatmap(ctx: Context, fld: str, order: np.ndarray, names: list[str], panels: list,
                         const: np.ndarray, near: np.ndarray, cbar_label: str):
    """City x factor heat map panels (values, their interval half-widths, title), cities in ``order``: grey rows
    for ranks that never move, a red × for unreliable cells (a wide interval, or a rank that almost never
    moves)."""
    n, k = panels[0][0].shape
    mask = np.repeat(const[:, None], k, axis=1)
    suffix = {int(i): " (fixed)" for i, c in zip(order, const, strict=True) if c}
    suffix.update({int(i): " (≈fixed)" for i, c in zip(order, near, strict=True) if c})
    labels = _city_labels(ctx, fld, order, suffix)
    fw = text_width(names, 7.5)
    cw = 0.3 if n * k <= ANNOTATE_MAX else 0.24
    L = Layout(text_width(labels, 7.5) + 0.12, [max(cw * k, 1.0)] * len(panels), ROW * n + 0.1, top=fw + 0.75,
               bottom=fw + 0.15, gap=0.2, cbar=0.5)
    for ax, (M, C, title) in zip(L.axes, panels, strict=True):
        flag = ((C > CONF_LIMIT) | near[:, None]) & ~mask  # unreliable: a wide interval, or a ≈fixed rank
        im = heat(ax, np.clip(M, 0, 1), "viridis", 0, 1, _fmt_index, mask, flag=flag)
        category_labels(ax, "x", names, 7.5, sides=("bottom", "top"), rotation=90, **HEAT_TICK)
        ax.set_xlim(-0.5, k - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
        ax.text(0.5, 1 + (fw + 0.08) / (ROW * n + 0.1), title, transform=ax.transAxes, ha="center", va="bottom",
                fontsize=8.5)
    category_labels(L.axes[0], "y", labels, 7.5, **HEAT_TICK)
    for ax in L.axes[1:]:
        ax.set_yticks([])
    L.colorbar(im, cbar_label)
    L.title(ctx.field_label[fld])
    return L.fig


def rbar_bars(ctx: Context, fld: str):
    """S1 and ST of the mean rank shift R̄s of a field, factors by ST, with bootstrap intervals."""
    a = ctx.a.sel(field=fld)
    st = a["ST_rbar"].values
    order = np.argsort(-np.nan_to_num(st, nan=-1), kind="stable")
    bars = [(st, a["ST_conf_rbar"].values, "#3182bd", "ST (total effect)"),
            (a["S1_rbar"].values, a["S1_conf_rbar"].values, "#fd8d3c", "S1 (first order)")]
    return _index_bars(ctx, fld, np.array(ctx.factor_names()), order, bars,
                       "Sobol index of R̄s (mean |rank − nominal rank|)")


def given_rbar_bars(ctx: Context, fld: str):
    """Borgonovo's delta and the first-order index from given data of the mean rank shift R̄s of a field
    (Monte Carlo runs), the :data:`MAX_BAR_FACTORS` factors of largest delta, with bootstrap intervals."""
    a = ctx.a.sel(field=fld)
    bars = [(a["delta_rbar"].values, a["delta_rbar_conf"].values, "#3182bd", "δ (moment-independent)"),
            (a["S1_given_rbar"].values, a["S1_given_rbar_conf"].values, "#fd8d3c", "S1 (first order)")]
    return _index_bars(ctx, fld, np.array(ctx.given_names()), ctx.given_order(fld)[:MAX_BAR_FACTORS], bars,
                       "index of R̄s from given data (mean |rank − nominal rank|)")


def _index_bars(ctx: Context, fld: str, names: np.ndarray, order: np.ndarray, bars: list, xlabel: str):
    """Pairs of horizontal bars (values, interval half-widths, colour, label) per factor, factors in ``order``."""
    k = len(order)
    left = text_width(names[order], 8) + 0.15
    L = Layout(left, [max(5.6 - left - 0.25, 3.0)], 0.3 * k + 0.1, top=0.4, bottom=0.5, right=0.25)
    ax = L.axes[0]
    y = np.arange(k)
    h = 0.38
    for off, (v, c, colour, label) in zip((-h / 2, h / 2), bars, strict=True):
        ax.barh(y + off, v[order], h, xerr=c[order], color=colour, label=label, error_kw={"lw": 0.8, "capsize": 2})
    ax.set_axisbelow(True)
    category_labels(ax, "y", names[order], 8)
    ax.set_ylim(k - 0.4, -0.6)
    hi = float(np.nanmax(np.concatenate([v[order] + c[order] for v, c, *_ in bars] + [[0.1]])))
    v1, c1 = bars[1][0][order], bars[1][1][order]
    ax.set_xlim(min(0.0, float(np.nanmin(np.concatenate([v1 - c1, [0]])))), min(hi * 1.05, 1.2))
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(xlabel, fontsize=8.5, labelpad=2)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#e0e0e0", lw=0.6)
    ax.legend(loc="lower right", fontsize=8)
    for sp in ("top", "right"):
        ax.spines[sp].set_visible(False)
    L.title(ctx.field_label[fld])
    return L.fig


def rbar_fields(ctx: Context):
    """Heat map of the ST index of every factor on the mean rank shift R̄s of every field."""
    names = ctx.factor_names()
    M = ctx.a["ST_rbar"].sel(field=ctx.fields).transpose(ctx.sdim, "field").values
    k, m = M.shape
    fw = text_width(ctx.fields, 8)
    L = Layout(text_width(names, 8) + 0.12, [0.5 * m], 0.24 * k, top=fw + 0.45, bottom=0.15, cbar=0.6)
    ax = L.axes[0]
    im = heat(ax, np.clip(M, 0, 1), "viridis", 0, 1, _fmt_index)
    category_labels(ax, "x", ctx.fields, 8, sides=("top",), rotation=90, **HEAT_TICK)
    category_labels(ax, "y", names, 8, **HEAT_TICK)
    L.colorbar(im, "ST of R̄s")
    L.title("ST of R̄s by field")
    return L.fig


def given_rbar_fields(ctx: Context):
    """Heat maps of delta and the first-order index from given data of every factor on the mean rank shift R̄s
    of every field (Monte Carlo runs), factors by their delta on the overall R̄s (at most
    :data:`MAX_HEAT_FACTORS`); a red × where the interval is wider than ±CONF_LIMIT."""
    rows = ctx.given_order("overall")[:MAX_HEAT_FACTORS]
    names = [ctx.given_names()[j] for j in rows]
    m = len(ctx.fields)
    fw = text_width(ctx.fields, 8)
    L = Layout(text_width(names, 8) + 0.12, [0.42 * m] * 2, 0.24 * len(rows), top=fw + 0.7, bottom=0.15, gap=0.2,
               cbar=0.6)
    for ax, (var, title) in zip(L.axes, (("delta_rbar", "δ"), ("S1_given_rbar", "S1")), strict=True):
        M = ctx.a[var].sel(field=ctx.fields).transpose("factor", "field").values[rows]
        C = ctx.a[f"{var}_conf"].sel(field=ctx.fields).transpose("factor", "field").values[rows]
        im = heat(ax, np.clip(M, 0, 1), "viridis", 0, 1, _fmt_index, flag=C > CONF_LIMIT)
        category_labels(ax, "x", ctx.fields, 8, sides=("top",), rotation=90, **HEAT_TICK)
        ax.text(0.5, 1 + (fw + 0.1) / (0.24 * len(rows)), title, transform=ax.transAxes, ha="center", va="bottom",
                fontsize=8.5)
    category_labels(L.axes[0], "y", names, 8, **HEAT_TICK)
    L.axes[1].set_yticks([])
    L.colorbar(im, "index of R̄s (given data)")
    L.title("δ and S1 of R̄s by field")
    return L.fig


def width_map(ctx: Context):
    """Field x city map of the widths of the 5-95 % rank intervals."""
    order = ctx.order("overall")
    W = ctx.a["rank_interval_width"].sel(field=ctx.fields).transpose("city", "field").values[order]
    n, m = W.shape
    labels = _city_labels(ctx, "overall", order)
    fw = text_width(ctx.fields, 8)
    L = Layout(text_width(labels, 7.5) + 0.12, [0.45 * m], ROW * n, top=fw + 0.45, bottom=fw + 0.12, cbar=0.4)
    ax = L.axes[0]
    vmax = max(float(np.nanmax(W)) if np.isfinite(W).any() else 1.0, 1.0)
    im = heat(ax, W, "magma_r", 0, vmax, lambda v: rank_text(v) if np.isfinite(v) else "")
    category_labels(ax, "x", ctx.fields, 8, sides=("bottom", "top"), rotation=90, **HEAT_TICK)
    category_labels(ax, "y", labels, 7.5, **HEAT_TICK)
    L.colorbar(im, "5–95 % rank-interval width")
    L.title("Rank-interval width")
    return L.fig


def acceptability(ctx: Context, fld: str):
    """The rank-acceptability matrix P(rank = r) of the top cities of a field, nominal ranks boxed."""
    a = ctx.a.sel(field=fld)
    order = ctx.order(fld)[:min(TOP_ACCEPT, ctx.a.sizes["city"])]
    P = ctx.rank_prob(fld, order) * 100
    nz = np.nonzero((P >= 0.5).any(axis=0))[0]
    R = int(min(max(nz.max() + 1 if nz.size else len(order), len(order)), P.shape[1]))
    P = P[:, :R]
    n = len(order)
    labels = _city_labels(ctx, fld, order)
    L = Layout(text_width(labels, 8) + 0.12, [0.27 * R], 0.27 * n, top=0.4, bottom=0.5, cbar=0.7)
    ax = L.axes[0]
    im = heat(ax, P, "Blues", 0, 100, lambda v: f"{v:.0f}" if v >= 0.5 else "")
    nom = a["nominal_rank"].values[order]
    for i, r in enumerate(nom):
        if 1 <= r <= R:
            ax.add_patch(Rectangle((r - 1.5, i - 0.5), 1, 1, fill=False, ec=C_MED, lw=1.4))
    ax.set_xticks(range(R), [str(r) for r in range(1, R + 1)], fontsize=7)  # real ticks: the x label sits below
    category_labels(ax, "y", labels, 8, **HEAT_TICK)
    ax.set_xlabel("rank r", fontsize=8.5, labelpad=2)
    L.colorbar(im, "P(rank = r), %")
    L.title(f"P(rank = r): top {n} of the {ctx.field_label[fld]} ranking")
    return L.fig


def pairs(ctx: Context, fld: str):
    """P(row city ranks strictly above column city) for the top cities of a field."""
    P = ctx.a["pair_prob"].sel(field=fld).values * 100
    names = [ctx.name(c) for c in ctx.a["top_city"].values]
    n = len(names)
    P[np.arange(n), np.arange(n)] = np.nan
    tw = text_width(names, 8)
    L = Layout(tw + 0.12, [0.36 * n], 0.3 * n, top=0.4, bottom=tw + 0.15, cbar=0.7)
    ax = L.axes[0]
    im = heat(ax, P, "RdBu_r", 0, 100, lambda v: f"{v:.0f}" if np.isfinite(v) else "")
    category_labels(ax, "x", names, 8, rotation=90, **HEAT_TICK)
    category_labels(ax, "y", names, 8, **HEAT_TICK)
    L.colorbar(im, "P(row above column), %")
    L.title("P(row city ranks above column city)")
    return L.fig
