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

from .canvas import ANNOTATE_MAX, HEAT_TICK, Layout, category_labels, heat, text_width
from .context import CONF_LIMIT, Context
from .text import rank_text

TOP_ACCEPT = 15  # cities in the rank-acceptability matrix
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


def plan(ctx: Context) -> list[FigurePlan]:
    """The figures of this run, in page order."""
    out: list[FigurePlan] = []

    def add(key, section, draw, args, title, caption="", wide=False):
        assert section in SECTIONS, section
        out.append(FigurePlan(key, f"{len(out) + 1:02d}-{_slug(key)}", section, title, caption, draw, args, wide))

    for fld in ctx.fields:
        add(f"rank {fld}", "ranks", rank_uncertainty, (fld,), f"Rank uncertainty: {ctx.field_label[fld]}")
    if ctx.has_rank_sobol:
        for fld in ctx.fields:
            add(f"sobol {fld}", "by_city", sobol_heatmap, (fld,), f"What drives each rank: {ctx.field_label[fld]}",
                wide=True)
    if ctx.sobol:
        add("rbar", "sensitivity", rbar_bars, ("overall",), "What drives the mean rank shift R̄s (overall)",
            f"S1 and ST of R̄s (mean over cities of |rank − nominal rank|) with {ctx.a.attrs.get('conf_level', 0.95):.0%} "
            "bootstrap intervals. S1: share of the variance explained by the factor alone; ST: including its "
            "interactions.")
        if len(ctx.fields) > 1:
            add("rbar fields", "sensitivity", rbar_fields, (), "ST of R̄s by field",
                "Total-effect index of each factor on the mean rank shift of each field's ranking.")
    if len(ctx.fields) > 1:
        add("width", "robustness", width_map, (), "Rank-interval width by field",
            "Width of the 5–95 % rank interval of every city in every field (0 = the rank never moves in 90 % "
            "of scenarios); cities in overall nominal order.")
    add("acceptability", "robustness", acceptability, ("overall",), "Rank acceptability (overall)",
        "P(rank = r) in % for the top cities of the overall ranking; orange boxes mark the nominal rank.")
    if "pair_prob" in ctx.a:
        add("pairs", "robustness", pairs, ("overall",), "Who ranks above whom (overall)",
            "P(row city ranks strictly above column city) over the scenarios, in %, for the top 10 cities.")
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _city_labels(ctx: Context, fld: str, order: np.ndarray, suffix: dict[int, str] | None = None) -> list[str]:
    nom = ctx.a["nominal_rank"].sel(field=fld).values
    cities = ctx.a["city"].values
    out = []
    for i in order:
        r = int(nom[i])
        out.append(f"{r if r > 0 else '–'}  {ctx.name(cities[i])}{(suffix or {}).get(int(i), '')}")
    return out


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
    names = ctx.factor_names()
    st = ctx.sens("ST", fld)[order]
    s1 = ctx.sens("S1", fld)[order]
    stc = ctx.sens("ST_conf", fld)[order]
    s1c = ctx.sens("S1_conf", fld)[order]
    const = ctx.constant(fld)[order]
    near = ctx.nearly_constant(fld)[order]
    n, k = st.shape
    mask = np.repeat(const[:, None], k, axis=1)
    suffix = {int(i): " (fixed)" for i, c in zip(order, const, strict=True) if c}
    suffix.update({int(i): " (≈fixed)" for i, c in zip(order, near, strict=True) if c})
    labels = _city_labels(ctx, fld, order, suffix)
    fw = text_width(names, 7.5)
    cw = 0.3 if n * k <= ANNOTATE_MAX else 0.24
    L = Layout(text_width(labels, 7.5) + 0.12, [max(cw * k, 1.0)] * 2, ROW * n + 0.1, top=fw + 0.75,
               bottom=fw + 0.15, gap=0.2, cbar=0.5)
    for ax, M, C, title in ((L.axes[0], st, stc, "ST (total effect)"), (L.axes[1], s1, s1c, "S1 (first order)")):
        flag = ((C > CONF_LIMIT) | near[:, None]) & ~mask  # unreliable: a wide interval, or a ≈fixed rank
        im = heat(ax, np.clip(M, 0, 1), "viridis", 0, 1, _fmt_index, mask, flag=flag)
        category_labels(ax, "x", names, 7.5, sides=("bottom", "top"), rotation=90, **HEAT_TICK)
        ax.set_xlim(-0.5, k - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
        ax.text(0.5, 1 + (fw + 0.08) / (ROW * n + 0.1), title, transform=ax.transAxes, ha="center", va="bottom",
                fontsize=8.5)
    category_labels(L.axes[0], "y", labels, 7.5, **HEAT_TICK)
    L.axes[1].set_yticks([])
    L.colorbar(im, "Sobol index of the rank")
    L.title(ctx.field_label[fld])
    return L.fig


def rbar_bars(ctx: Context, fld: str):
    """S1 and ST of the mean rank shift R̄s of a field, factors by ST, with bootstrap intervals."""
    a = ctx.a.sel(field=fld)
    names = np.array(ctx.factor_names())
    st, s1 = a["ST_rbar"].values, a["S1_rbar"].values
    stc, s1c = a["ST_conf_rbar"].values, a["S1_conf_rbar"].values
    order = np.argsort(-np.nan_to_num(st, nan=-1), kind="stable")
    k = len(order)
    left = text_width(names, 8) + 0.15
    L = Layout(left, [max(5.6 - left - 0.25, 3.0)], 0.3 * k + 0.1, top=0.4, bottom=0.5, right=0.25)
    ax = L.axes[0]
    y = np.arange(k)
    h = 0.38
    ax.barh(y - h / 2, st[order], h, xerr=stc[order], color="#3182bd", label="ST (total effect)",
            error_kw={"lw": 0.8, "capsize": 2})
    ax.barh(y + h / 2, s1[order], h, xerr=s1c[order], color="#fd8d3c", label="S1 (first order)",
            error_kw={"lw": 0.8, "capsize": 2})
    ax.set_axisbelow(True)
    category_labels(ax, "y", names[order], 8)
    ax.set_ylim(k - 0.4, -0.6)
    hi = float(np.nanmax(np.concatenate([st + stc, s1 + s1c, [0.1]])))
    ax.set_xlim(min(0.0, float(np.nanmin(np.concatenate([s1 - s1c, [0]])))), min(hi * 1.05, 1.2))
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel("Sobol index of R̄s (mean |rank − nominal rank|)", fontsize=8.5, labelpad=2)
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
    P = a["rank_prob"].values[order] * 100
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
