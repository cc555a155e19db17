"""The self-contained HTML report of an analysed run: ``rankstab report results/NAME.zarr``.

One HTML file, readable offline on a phone or a desktop: every figure is a base64 PNG ``data:`` URI
(matplotlib, Agg backend), the CSS and the one tiny script are inline, and a Content-Security-Policy
forbids any network access. Contents:

* a written summary generated from the numbers (flagged prominently when the dataset is synthetic);
* the JRC-style rank uncertainty chart of every field (nominal and median rank, 5-95 % interval);
* Sobol runs: city x factor heat maps of the total (ST) and first-order (S1) indices of every rank, and
  the S1/ST bar chart of the mean rank shift R-bar with bootstrap confidence intervals;
* the field x city map of rank-interval widths, the rank-acceptability matrix P(rank = r) and the
  pairwise probabilities of the top cities of the overall ranking;
* tables: per field, per city (overall ranking), and the run and its spec as an annex.

``--png-dir`` also writes every figure as a PNG file. The analysis group is computed first when the store
has none (or a stale one).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import UserError, check_output_folder, writable

DPI = 100
CONF_LIMIT = 0.2  # a Sobol index whose bootstrap half-width exceeds this is marked unreliable
RARE = 0.99  # a rank held in at least this share of scenarios is "nearly constant" (as engine.analysis)
TOP_ACCEPT = 15  # cities in the rank-acceptability matrix
ANNOTATE_MAX = 400  # annotate heat-map cells only up to this many cells per panel
C_BAR, C_NOM, C_MED = "#9ecae1", "#08306b", "#e6550d"


# --------------------------------------------------------------------------------------------- entry


def report(store: str | Path | xr.Dataset, out: str | Path | None = None,
           png_dir: str | Path | None = None) -> Path:
    """Write the self-contained HTML report (default: next to the store, NAME.html); return its path."""
    t0 = time.perf_counter()
    path = _store_path(store)
    out_path = _out_path(path, out)
    png_path = _png_dir(png_dir) if png_dir is not None else None
    ctx = _Context.load(path)
    figs = _figures(ctx)
    page = _html(ctx, figs, time.perf_counter() - t0)
    _write_text(out_path, page)
    if png_path is not None:
        _make_dir(png_path)
        for fig in figs.values():
            _write_bytes(png_path / f"{fig.slug}.png", fig.png)
    return out_path


def report_cli(args) -> int:
    path = report(args.store, out=args.out, png_dir=args.png_dir)
    print(path)
    return 0


# ------------------------------------------------------------------------------------ paths and I/O


def _store_path(store) -> Path:
    if isinstance(store, xr.Dataset):
        src = store.encoding.get("source")
        if not src:
            raise UserError("this Dataset was not opened from a store; pass the store path instead")
        return Path(src)
    return Path(store)


def _out_path(store: Path, out) -> Path:
    name = (store.stem if store.suffix == ".zarr" else store.name) + ".html"
    if out is None:
        target = store.parent / name
    else:
        target = Path(out).expanduser()
        if target.is_dir() or str(out).endswith(("/", os.sep)):
            target = target / name
    check_output_folder(target)
    if target.is_dir():
        raise UserError(f"{target} is a folder; give an .html file path as --out")
    return target


def _png_dir(png_dir) -> Path:
    """The --png-dir, checked (an existing writable folder, or one that can be made); made when written."""
    d = Path(png_dir).expanduser()
    if d.exists() and not d.is_dir():
        raise UserError(f"--png-dir {d} is a file, not a folder; choose a folder")
    near = d if d.is_dir() else next((p for p in d.absolute().parents if p.exists()), Path("/"))
    if not near.is_dir():
        raise UserError(f"--png-dir {d}: {near} is a file, not a folder; choose another folder")
    problem = writable(near)
    if problem:
        raise UserError(f"--png-dir {d}: cannot write in {near} ({problem}); choose another folder")
    return d


def _make_dir(d: Path) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--png-dir {d}: cannot create the folder ({exc.strerror}); choose another") from None


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({exc.strerror}); check space and permissions") from None


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------- the data


@dataclass
class _Context:
    """Everything the report needs, loaded into memory (the analysis and the store's small variables)."""

    path: Path
    attrs: dict
    a: xr.Dataset                      # the analysis (loaded; S2 dropped)
    city_name: dict[str, str]
    fields: list[str]                  # fields shown (the single field of a one-field dataset is 'overall')
    field_label: dict[str, str]
    factors: xr.Dataset                # factor coordinates of the store
    node_weight: dict[str, float]
    sobol: bool
    sdim: str | None                   # 'factor' or 'factor_group'
    dataset: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> _Context:
        from .store import done_chunks, open_store

        store = open_store(path)  # UserError when missing or not a store
        attrs = dict(store.attrs)
        done = done_chunks(path)
        complete = bool(attrs.get("complete")) and bool(done.all())
        a = _open_analysis(path)
        stale = a is None or a.attrs.get("spec_hash") != attrs.get("spec_hash") or a.attrs.get(
            "n_scenarios") != attrs.get("n_scenarios") or bool(
            complete and a.attrs.get("partial"))
        if not complete and (stale or not a.attrs.get("partial")):
            raise UserError(f"{path} is incomplete ({int(done.sum())} of {done.size} chunks done); finish it with "
                            f"`rankstab run SPEC --out {path} --resume` (or `rankstab analyze --partial {path}` "
                            f"to report the completed part of a Monte Carlo run)")
        if stale:
            from .analysis import analyze  # imports SciPy: only when there is something to analyse

            analyze(path)
            a = _open_analysis(path)
        a = a.drop_vars([v for v in ("S2", "S2_conf") if v in a]).load()
        names = [str(c) for c in store["city_name"].values] if "city_name" in store else None
        city_name = dict(zip(map(str, store["city"].values), names or map(str, store["city"].values), strict=True))
        flds = [str(f) for f in store["field"].values]
        fnames = [str(f) for f in store["field_name"].values] if "field_name" in store.coords else flds
        label = {f: (f"{f}: {n}" if n and n != f else f) for f, n in zip(flds, fnames, strict=True)}
        label["overall"] = "overall"
        shown = flds
        if len(flds) == 2 and flds[-1] == "overall":
            single = flds[0]
            same = np.array_equal(a["rank_prob"].sel(field=single).values, a["rank_prob"].sel(field="overall").values)
            if same:
                shown = ["overall"]
                label["overall"] = f"overall (= {single}, the only field)"
        fcoords = [c for c in store.coords if c.startswith("factor")]
        factors = store[fcoords].reset_coords().load() if "factor" in store.dims else xr.Dataset()
        node_weight = {}
        if "node" in store.dims and "node_nominal_weight" in store.coords:
            node_weight = dict(zip(map(str, store["node"].values), store["node_nominal_weight"].values.tolist(),
                                   strict=True))
        sobol = attrs.get("design_kind") == "sobol" and "ST_rbar" in a
        sdim = a.attrs.get("sobol_dim") if sobol else None
        try:
            dataset = json.loads(attrs.get("dataset_attrs", "{}"))
        except ValueError:
            dataset = {}
        return cls(path, attrs, a, city_name, shown, label, factors, node_weight, sobol, sdim, dataset)

    # helpers -------------------------------------------------------------------------------------
    @property
    def synthetic(self) -> bool:
        return str(self.attrs.get("synthetic", "0")) in ("1", "True", "true")

    @property
    def has_rank_sobol(self) -> bool:
        return self.sobol and "ST" in self.a and "rank" in self.a["target"].values

    def name(self, city) -> str:
        return self.city_name.get(str(city), str(city))

    def order(self, fld: str) -> np.ndarray:
        """City indices by nominal rank in a field (unscored cities last), ties by median rank."""
        nom = self.a["rank_nominal"].sel(field=fld).values.astype(float)
        nom = np.where(nom <= 0, np.inf, nom)
        med = np.nan_to_num(self.a["rank_median"].sel(field=fld).values, nan=np.inf)
        return np.lexsort((med, nom))

    def sens(self, var: str, fld: str, target: str = "rank") -> np.ndarray:
        """(city, factor) array of ST/S1/..._conf of a target in a field."""
        v = self.a[var].sel(target=target, field=fld).transpose("city", self.sdim)
        return v.values

    def constant(self, fld: str, target: str = "rank") -> np.ndarray:
        return self.a["constant"].sel(target=target, field=fld).values.astype(bool)

    @property
    def rare_share(self) -> float:
        return float(self.a.attrs.get("nearly_constant_share", RARE))

    def nearly_constant(self, fld: str) -> np.ndarray:
        """Ranks that move but are held in at least ``rare_share`` of the scenarios (their variance is tiny,
        so their Sobol indices are noise): the analysis's ``nearly_constant`` when it has one."""
        if "nearly_constant" in self.a:
            return self.a["nearly_constant"].sel(field=fld).values.astype(bool)
        held = self.a["rank_prob"].sel(field=fld).max("rank").values >= self.rare_share
        return held & ~self.constant(fld)

    def unreliable(self, fld: str) -> np.ndarray:
        """(city, factor): rank Sobol indices not to be trusted (nearly constant rank, or a wide interval)."""
        bad = (self.sens("ST_conf", fld) > CONF_LIMIT) | (self.sens("S1_conf", fld) > CONF_LIMIT)
        return (bad | self.nearly_constant(fld)[:, None]) & ~self.constant(fld)[:, None]

    def factor_names(self) -> list[str]:
        return [str(f) for f in self.a[self.sdim].values] if self.sdim else []

    def factor_phrase(self, name: str) -> str:
        """'the choice of aggregation', 'the weight of P1', 'the group “indicator weights” (49 factors)'."""
        f = self.factors
        if not f or "factor" not in f.dims:
            return name
        if self.sdim == "factor_group":
            members = [str(x) for x, g in zip(f["factor"].values, f["factor_group"].values, strict=True) if g == name]
            if len(members) != 1:
                return f"the factor group “{name}” ({len(members)} factors)"
            name = members[0]
        if name not in f["factor"].values:
            return name
        row = f.sel(factor=name)
        kind = str(row["factor_kind"].values) if "factor_kind" in row else ""
        node = str(row["factor_node"].values) if "factor_node" in row else ""
        if kind == "weight":
            return f"the weight of {node}" if node else f"the weight {name}"
        return f"the choice of {name}" if kind else name


def _open_analysis(path: Path) -> xr.Dataset | None:
    """The analysis group, or None when there is none (as engine.analysis.open_analysis, without importing
    the analysis module and SciPy, which would double the time of a report)."""
    import zarr

    try:
        return xr.open_zarr(str(path), group="analysis", consolidated=False)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError, zarr.errors.NodeNotFoundError):
        return None


# ------------------------------------------------------------------------------------------ figures


@dataclass
class _Fig:
    slug: str
    title: str
    caption: str
    png: bytes
    size: tuple[int, int]
    wide: bool = False

    def uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


class _Layout:
    """A figure laid out in inches: fixed margins measured from the actual label texts, so no
    constrained-layout passes (the text layout dominates the rendering time otherwise)."""

    def __init__(self, left: float, panels: list[float], height: float, top: float, bottom: float,
                 gap: float = 0.25, cbar: float = 0.0, right: float = 0.15) -> None:
        from matplotlib.figure import Figure

        self.w = left + sum(panels) + gap * (len(panels) - 1) + (0.12 + 0.15 + 0.6 if cbar else 0) + right
        self.h = top + height + bottom
        self.fig = Figure(figsize=(self.w, self.h), dpi=DPI)
        self.axes, x = [], left
        for pw in panels:
            self.axes.append(self.fig.add_axes(self._box(x, bottom, pw, height)))
            x += pw + gap
        self.cax = None
        if cbar:
            ch = min(height, max(cbar * height, 1.2))
            self.cax = self.fig.add_axes(self._box(x - gap + 0.12, bottom + (height - ch) / 2, 0.15, ch))

    def _box(self, x, y, w, h):
        return [x / self.w, y / self.h, w / self.w, h / self.h]

    def colorbar(self, im, label: str):
        cb = self.fig.colorbar(im, cax=self.cax)
        cb.set_label(label, fontsize=8)
        cb.ax.tick_params(labelsize=7.5)
        return cb

    def title(self, text: str, y_from_top: float = 0.08, size: float = 10) -> None:
        self.fig.text(0.08 / self.w, 1 - y_from_top / self.h, text, ha="left", va="top", fontsize=size,
                      fontweight="bold")


_RENDERER = None


def _text_w(labels, size: float) -> float:
    """Width in inches of the widest label at a font size (measured with the Agg renderer)."""
    global _RENDERER
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    if _RENDERER is None:
        _RENDERER = RendererAgg(10, 10, DPI)
    prop = FontProperties(size=size)
    widths = [_RENDERER.get_text_width_height_descent(str(t), prop, ismath=False)[0] for t in labels if str(t)]
    return max(widths, default=0.0) / DPI


def _png(fig) -> tuple[bytes, tuple[int, int]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    data = buf.getvalue()
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return data, (w, h)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _figures(ctx: _Context) -> dict[str, _Fig]:
    figs: dict[str, _Fig] = {}

    def add(key, fig, title, caption, wide=False):
        png, size = _png(fig)
        figs[key] = _Fig(f"{len(figs) + 1:02d}-{_slug(key)}", title, caption, png, size, wide)

    for fld in ctx.fields:
        add(f"rank {fld}", _fig_rank_uncertainty(ctx, fld), f"Rank uncertainty: {ctx.field_label[fld]}", "")
    if ctx.has_rank_sobol:
        for fld in ctx.fields:
            add(f"sobol {fld}", _fig_sobol_heatmap(ctx, fld), f"What drives each rank: {ctx.field_label[fld]}", "",
                wide=True)
    if ctx.sobol:
        add("rbar", _fig_rbar_bars(ctx, "overall"), "What drives the mean rank shift R̄s (overall)",
            f"S1 and ST of R̄s (mean over cities of |rank − nominal rank|) with {ctx.a.attrs.get('conf_level', 0.95):.0%} "
            "bootstrap intervals. S1: share of the variance explained by the factor alone; ST: including its "
            "interactions.")
        if len(ctx.fields) > 1:
            add("rbar fields", _fig_rbar_fields(ctx), "ST of R̄s by field",
                "Total-effect index of each factor on the mean rank shift of each field's ranking.")
    if len(ctx.fields) > 1:
        add("width", _fig_width_map(ctx), "Rank-interval width by field",
            "Width of the 5–95 % rank interval of every city in every field (0 = the rank never moves in 90 % "
            "of scenarios); cities in overall nominal order.")
    add("acceptability", _fig_acceptability(ctx, "overall"), "Rank acceptability (overall)",
        "P(rank = r) in % for the top cities of the overall ranking; orange boxes mark the nominal rank.")
    if "pair_prob" in ctx.a:
        add("pairs", _fig_pairs(ctx, "overall"), "Who ranks above whom (overall)",
            "P(row city ranks strictly above column city) over the scenarios, in %, for the top 10 cities.")
    return figs


def _city_labels(ctx: _Context, fld: str, order: np.ndarray, suffix: dict[int, str] | None = None) -> list[str]:
    nom = ctx.a["rank_nominal"].sel(field=fld).values
    cities = ctx.a["city"].values
    out = []
    for i in order:
        r = int(nom[i])
        out.append(f"{r if r > 0 else '–'}  {ctx.name(cities[i])}{(suffix or {}).get(int(i), '')}")
    return out


ROW = 0.17  # inches per city row


def _fig_rank_uncertainty(ctx: _Context, fld: str):
    a = ctx.a.sel(field=fld)
    order = ctx.order(fld)
    n = len(order)
    nom = a["rank_nominal"].values[order].astype(float)
    nom[nom <= 0] = np.nan
    q05, q95, med = (a[v].values[order] for v in ("rank_q05", "rank_q95", "rank_median"))
    labels = _city_labels(ctx, fld, order)
    left = _text_w(labels, 8) + 0.15
    L = _Layout(left, [max(4.9 - left - 0.3, 3.0)], ROW * n + 0.1, top=0.75, bottom=0.5, right=0.3)
    ax = L.axes[0]
    y = np.arange(n)
    lo, hi = q05.copy(), q95.copy()
    flat = hi - lo < 0.5  # a zero-width interval still shows a short bar
    lo[flat] -= 0.25
    hi[flat] += 0.25
    ax.hlines(y, lo, hi, color=C_BAR, lw=5, zorder=1, label="5–95 % interval")
    ax.scatter(med, y, marker="D", s=18, color=C_MED, zorder=3, label="median rank", linewidths=0)
    ax.scatter(nom, y, marker="o", s=14, color=C_NOM, zorder=4, label="nominal rank", linewidths=0)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(n - 0.4, -0.6)
    ax.set_xlim(0.3, int(ctx.a.sizes["rank"]) + 0.7)
    ax.xaxis.set_ticks_position("both")
    ax.tick_params(axis="x", labeltop=True, labelsize=8)
    ax.set_xlabel("rank (1 = best)", fontsize=8.5, labelpad=2)
    ax.grid(axis="x", color="#e0e0e0", lw=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="lower left", fontsize=7, frameon=True, framealpha=0.9, handlelength=1.2)
    L.title(ctx.field_label[fld])
    return L.fig


def _heat(ax, M, cmap, vmin, vmax, annotate_fmt=None, mask=None, flag=None):
    """imshow of M (masked cells grey), numbers written in the cells when there are few enough, and a red ×
    instead of the number in ``flag`` cells."""
    import matplotlib

    cm = matplotlib.colormaps[cmap].with_extremes(bad="#d9d9d9")
    bad = np.isnan(M) if mask is None else (mask | np.isnan(M))
    im = ax.imshow(np.ma.masked_array(M, mask=bad), cmap=cm, vmin=vmin, vmax=vmax, aspect="auto",
                   interpolation="nearest")
    if annotate_fmt and M.size <= ANNOTATE_MAX:
        for (i, j), v in np.ndenumerate(M):
            txt = "" if bad[i, j] or (flag is not None and flag[i, j]) else annotate_fmt(v)
            if txt:
                frac = (np.clip(v, vmin, vmax) - vmin) / (vmax - vmin)
                ax.text(j, i, txt, ha="center", va="center", fontsize=6.5,
                        color="white" if _dark(cm, frac) else "black")
    if flag is not None and flag.any():
        i, j = np.nonzero(flag)
        ax.scatter(j, i, marker="x", s=16, color="#ff3030", linewidths=1.0, zorder=3)
    ax.tick_params(length=2, pad=2)
    return im


def _dark(cm, frac: float) -> bool:
    r, g, b, _ = cm(frac)
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


def _fmt_index(v: float) -> str:
    return f"{v:.2f}".lstrip("0") if v >= 0.005 else ""


def _fig_sobol_heatmap(ctx: _Context, fld: str):
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
    fw = _text_w(names, 7.5)
    cw = 0.3 if n * k <= ANNOTATE_MAX else 0.24
    L = _Layout(_text_w(labels, 7.5) + 0.12, [max(cw * k, 1.0)] * 2, ROW * n + 0.1, top=fw + 0.75,
                bottom=fw + 0.15, gap=0.2, cbar=0.5)
    for ax, M, C, title in ((L.axes[0], st, stc, "ST (total effect)"), (L.axes[1], s1, s1c, "S1 (first order)")):
        flag = ((C > CONF_LIMIT) | near[:, None]) & ~mask  # unreliable: a wide interval, or a ≈fixed rank
        im = _heat(ax, np.clip(M, 0, 1), "viridis", 0, 1, _fmt_index, mask, flag=flag)
        ax.set_xticks(range(k), names, rotation=90, fontsize=7.5)
        ax.tick_params(axis="x", top=True, labeltop=True)
        ax.set_xlim(-0.5, k - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
        ax.text(0.5, 1 + (fw + 0.08) / (ROW * n + 0.1), title, transform=ax.transAxes, ha="center", va="bottom",
                fontsize=8.5)
    L.axes[0].set_yticks(range(n), labels, fontsize=7.5)
    L.axes[1].set_yticks([])
    L.colorbar(im, "Sobol index of the rank")
    L.title(ctx.field_label[fld])
    return L.fig


def _fig_rbar_bars(ctx: _Context, fld: str):
    a = ctx.a.sel(field=fld)
    names = np.array(ctx.factor_names())
    st, s1 = a["ST_rbar"].values, a["S1_rbar"].values
    stc, s1c = a["ST_conf_rbar"].values, a["S1_conf_rbar"].values
    order = np.argsort(-np.nan_to_num(st, nan=-1), kind="stable")
    k = len(order)
    left = _text_w(names, 8) + 0.15
    L = _Layout(left, [max(5.6 - left - 0.25, 3.0)], 0.3 * k + 0.1, top=0.4, bottom=0.5, right=0.25)
    ax = L.axes[0]
    y = np.arange(k)
    h = 0.38
    ax.barh(y - h / 2, st[order], h, xerr=stc[order], color="#3182bd", label="ST (total effect)",
            error_kw={"lw": 0.8, "capsize": 2})
    ax.barh(y + h / 2, s1[order], h, xerr=s1c[order], color="#fd8d3c", label="S1 (first order)",
            error_kw={"lw": 0.8, "capsize": 2})
    ax.set_yticks(y, names[order], fontsize=8)
    ax.set_ylim(k - 0.4, -0.6)
    hi = float(np.nanmax(np.concatenate([st + stc, s1 + s1c, [0.1]])))
    ax.set_xlim(min(0.0, float(np.nanmin(np.concatenate([s1 - s1c, [0]])))), min(hi * 1.05, 1.2))
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel("Sobol index of R̄s (mean |rank − nominal rank|)", fontsize=8.5, labelpad=2)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#e0e0e0", lw=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="lower right", fontsize=8)
    for sp in ("top", "right"):
        ax.spines[sp].set_visible(False)
    L.title(ctx.field_label[fld])
    return L.fig


def _fig_rbar_fields(ctx: _Context):
    names = ctx.factor_names()
    M = ctx.a["ST_rbar"].sel(field=ctx.fields).transpose(ctx.sdim, "field").values
    k, m = M.shape
    fw = _text_w(ctx.fields, 8)
    L = _Layout(_text_w(names, 8) + 0.12, [0.5 * m], 0.24 * k, top=fw + 0.45, bottom=0.15, cbar=0.6)
    ax = L.axes[0]
    im = _heat(ax, np.clip(M, 0, 1), "viridis", 0, 1, _fmt_index)
    ax.set_xticks(range(m), ctx.fields, rotation=90, fontsize=8)
    ax.tick_params(axis="x", top=True, labeltop=True, bottom=False, labelbottom=False)
    ax.set_yticks(range(k), names, fontsize=8)
    L.colorbar(im, "ST of R̄s")
    L.title("ST of R̄s by field")
    return L.fig


def _fig_width_map(ctx: _Context):
    order = ctx.order("overall")
    W = ctx.a["rank_interval_width"].sel(field=ctx.fields).transpose("city", "field").values[order]
    n, m = W.shape
    labels = _city_labels(ctx, "overall", order)
    fw = _text_w(ctx.fields, 8)
    L = _Layout(_text_w(labels, 7.5) + 0.12, [0.45 * m], ROW * n, top=fw + 0.45, bottom=fw + 0.12, cbar=0.4)
    ax = L.axes[0]
    vmax = max(float(np.nanmax(W)) if np.isfinite(W).any() else 1.0, 1.0)
    im = _heat(ax, W, "magma_r", 0, vmax, lambda v: _r(v) if np.isfinite(v) else "")
    ax.set_xticks(range(m), ctx.fields, rotation=90, fontsize=8)
    ax.tick_params(axis="x", top=True, labeltop=True)
    ax.set_yticks(range(n), labels, fontsize=7.5)
    L.colorbar(im, "5–95 % rank-interval width")
    L.title("Rank-interval width")
    return L.fig


def _fig_acceptability(ctx: _Context, fld: str):
    from matplotlib.patches import Rectangle

    a = ctx.a.sel(field=fld)
    order = ctx.order(fld)[:min(TOP_ACCEPT, ctx.a.sizes["city"])]
    P = a["rank_prob"].values[order] * 100
    nz = np.nonzero((P >= 0.5).any(axis=0))[0]
    R = int(min(max(nz.max() + 1 if nz.size else len(order), len(order)), P.shape[1]))
    P = P[:, :R]
    n = len(order)
    labels = _city_labels(ctx, fld, order)
    L = _Layout(_text_w(labels, 8) + 0.12, [0.27 * R], 0.27 * n, top=0.4, bottom=0.5, cbar=0.7)
    ax = L.axes[0]
    im = _heat(ax, P, "Blues", 0, 100, lambda v: f"{v:.0f}" if v >= 0.5 else "")
    nom = a["rank_nominal"].values[order]
    for i, r in enumerate(nom):
        if 1 <= r <= R:
            ax.add_patch(Rectangle((r - 1.5, i - 0.5), 1, 1, fill=False, ec=C_MED, lw=1.4))
    ax.set_xticks(range(R), [str(r) for r in range(1, R + 1)], fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("rank r", fontsize=8.5, labelpad=2)
    L.colorbar(im, "P(rank = r), %")
    L.title(f"P(rank = r): top {n} of the {ctx.field_label[fld]} ranking")
    return L.fig


def _fig_pairs(ctx: _Context, fld: str):
    P = ctx.a["pair_prob"].sel(field=fld).values * 100
    names = [ctx.name(c) for c in ctx.a["top_city"].values]
    n = len(names)
    P[np.arange(n), np.arange(n)] = np.nan
    tw = _text_w(names, 8)
    L = _Layout(tw + 0.12, [0.36 * n], 0.3 * n, top=0.4, bottom=tw + 0.15, cbar=0.7)
    ax = L.axes[0]
    im = _heat(ax, P, "RdBu_r", 0, 100, lambda v: f"{v:.0f}" if np.isfinite(v) else "")
    ax.set_xticks(range(n), names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    L.colorbar(im, "P(row above column), %")
    L.title("P(row city ranks above column city)")
    return L.fig


# ------------------------------------------------------------------------------------------ numbers


def _r(x: float) -> str:
    """A rank statistic: integer when it is one, else one decimal."""
    if not np.isfinite(x):
        return "–"
    return f"{round(x):d}" if abs(x - round(x)) < 1e-9 else f"{x:.1f}"


def _pct(p: float) -> str:
    v = 100 * p
    if 99.5 <= v < 100:
        return ">99 %"
    if 0 < v < 0.5:
        return "<1 %"
    return f"{v:.0f} %"


def _coverage(prob: np.ndarray, lo: float, hi: float) -> tuple[int, int, float]:
    """The integer rank range [floor(lo), ceil(hi)] and the probability the rank falls in it."""
    a, b = int(np.floor(lo)), int(np.ceil(hi))
    return a, b, float(prob[a - 1:b].sum())


def _range(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}–{b}"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _summary(ctx: _Context) -> list[str]:
    """Sentences (HTML) generated from the numbers, most informative first."""
    a, s = ctx.a, []
    ov = a.sel(field="overall")
    order = ctx.order("overall")
    cities = a["city"].values
    prob = ov["rank_prob"].values
    width = ov["rank_interval_width"].values
    nom = ov["rank_nominal"].values.astype(int)
    med = ov["rank_median"].values
    q05, q95 = ov["rank_q05"].values, ov["rank_q95"].values
    rank_sobol = ctx.has_rank_sobol
    const = ctx.constant("overall") if rank_sobol else np.zeros(len(cities), bool)
    near = ctx.nearly_constant("overall") if rank_sobol else np.zeros(len(cities), bool)
    unrel = ctx.unreliable("overall") if rank_sobol else None
    names = ctx.factor_names()

    def p_nom(i) -> str:
        return _pct(prob[i][nom[i] - 1]) if nom[i] > 0 else "–"

    def driver(i) -> str:
        """'; the choice of X explains 60 % of the variance of its rank alone, 75 % with interactions'"""
        if not rank_sobol or const[i]:
            return ""
        st, s1 = ctx.sens("ST", "overall")[i], ctx.sens("S1", "overall")[i]
        k = int(np.nanargmax(st))
        if near[i] or unrel[i, k]:
            return "; its Sobol indices are unreliable (the rank moves in very few scenarios)"
        return (f"; {_e(ctx.factor_phrase(names[k]))} explains {_pct(max(s1[k], 0))} of the variance of its rank "
                f"alone, {_pct(min(max(st[k], 0), 1))} with interactions")

    def within(i) -> str:
        lo, hi, cov = _coverage(prob[i], q05[i], q95[i])
        if lo == hi:
            return f"{lo} in every scenario" if cov >= 1 else f"{lo} in {_pct(cov)} of scenarios"
        return f"within {_range(lo, hi)} in {_pct(cov)} of scenarios"

    # the leaders
    parts = []
    for j, i in enumerate(order[:min(3, len(order))]):
        nm = _e(ctx.name(cities[i]))
        if j == 0:
            w = within(i)
            parts.append(f"<b>{_poss(nm)}</b> overall rank (nominal {nom[i]}) is {w}"
                         + ("" if w.startswith(f"{nom[i]} in") else f", and {nom[i]} in {p_nom(i)}"))
        else:
            parts.append(f"{_poss(nm)} (nominal {nom[i]}) {within(i)}")
    if parts:
        s.append("; ".join(parts) + ".")
    # most and least robust
    key = np.lexsort((ov["rank_abs_shift"].values, width))
    robust = [i for i in key if np.isfinite(width[i])][:3]
    if robust:
        txt = ", ".join(f"{_poss(_e(ctx.name(cities[i])))} (nominal {nom[i]}; {within(i)})" for i in robust)
        s.append(f"The most robust overall ranks are {txt}.")
    least = [i for i in key[::-1] if np.isfinite(width[i])][:2]
    if least:
        bits = [f"<b>{_poss(_e(ctx.name(cities[i])))}</b> (nominal {nom[i]}, median {_r(med[i])}, {within(i)}"
                f"{driver(i)})" for i in least]
        s.append("The least robust are " + " and ".join(bits) + ".")
    # where the nominal rank is not the typical one
    shift = np.abs(med - nom)
    off = [i for i in np.argsort(-shift, kind="stable") if shift[i] >= 1 and nom[i] > 0]
    if off:
        ex = ", ".join(f"{_e(ctx.name(cities[i]))} (nominal {nom[i]}, median {_r(med[i])})" for i in off[:3])
        s.append(f"For {len(off)} of {len(cities)} cities the nominal overall rank differs from the median "
                 f"scenario rank by at least one place, most for {ex}.")
    # rank shift and correlation
    rb = (f"A scenario moves a city's overall rank by R̄s = {float(ov['rbar_mean']):.2f} places on average "
          f"(5–95 % over scenarios: {float(ov['rbar_q05']):.2f}–{float(ov['rbar_q95']):.2f})")
    if "spearman_mean" in ov:
        rb += (f"; the scenario rankings correlate with the nominal one at Spearman ρ = "
               f"{float(ov['spearman_mean']):.3f} (Kendall τ = {float(ov['kendall_mean']):.3f}) on average")
    s.append(rb + ".")
    flds = [f for f in ctx.fields if f != "overall"]
    if len(flds) > 1:
        rbf = a["rbar_mean"].sel(field=flds).values
        hi, lo = int(np.argmax(rbf)), int(np.argmin(rbf))
        s.append(f"Field rankings are least stable in {_e(ctx.field_label[flds[hi]])} (R̄s = {rbf[hi]:.2f}) and "
                 f"most stable in {_e(ctx.field_label[flds[lo]])} (R̄s = {rbf[lo]:.2f}).")
    # what drives it
    if ctx.sobol:
        st, s1 = ov["ST_rbar"].values, ov["S1_rbar"].values
        stc = ov["ST_conf_rbar"].values
        k = int(np.nanargmax(st))
        txt = (f"<b>{_cap(_e(ctx.factor_phrase(names[k])))}</b> drives the mean rank shift R̄s most: it explains "
               f"{_pct(max(s1[k], 0))} of its variance alone and {_pct(min(st[k], 1))} (±{100 * stc[k]:.0f} points) "
               f"with interactions")
        rest = [j for j in np.argsort(-st) if j != k][:2]
        if rest:
            txt += "; next come " + " and ".join(f"{_e(names[j])} (ST {st[j]:.2f})" for j in rest)
        total = float(np.nansum(np.clip(s1, 0, None)))
        txt += f". The first-order indices sum to {total:.2f}"
        txt += (f", so interactions between the choices account for about {_pct(1 - total)} of it." if total < 0.95
                else ": the choices act almost additively.")
        s.append(txt)
    if rank_sobol:
        top = order[:min(10, len(order))]
        st = ctx.sens("ST", "overall")
        moving = [i for i in top if not const[i] and not near[i]]
        if moving:
            drivers = [int(np.nanargmax(st[i])) for i in moving]
            vals, counts = np.unique(drivers, return_counts=True)
            best = int(vals[np.argmax(counts)])
            vs = [min(st[i][best], 1) for i, d in zip(moving, drivers, strict=True) if d == best]
            who = (f"all {len(moving)}" if counts.max() == len(moving) else f"{int(counts.max())} of the {len(moving)}")
            whose = " whose rank really moves" if len(moving) < len(top) else ""
            s.append(f"For {who} top-{len(top)} cities{whose}, {_e(ctx.factor_phrase(names[best]))} has the largest "
                     f"total effect on the rank (ST {_range_f(min(vs), max(vs))}).")
        fixed = [i for i in top if const[i]]
        if fixed:
            s.append(_and([_e(ctx.name(cities[i])) for i in fixed])
                     + (" never moves" if len(fixed) == 1 else " never move") + " in the overall ranking.")
        n_near = sum(int(ctx.nearly_constant(f).sum()) for f in ctx.fields)
        wide = [ctx.sens("ST_conf", f)[ctx.unreliable(f).any(axis=1)] for f in ctx.fields]
        n_wide = sum(len(w) for w in wide)
        if n_wide:
            widest = max(float(np.nanmax(w)) for w in wide if len(w))
            who = ("it almost never moves" if n_wide == 1 else "both almost never move" if n_near == n_wide == 2
                   else "they all almost never move" if n_near == n_wide else f"{n_near} of them almost never move")
            near_txt = (f"{who} (the same rank in ≥ {100 * ctx.rare_share:.0f} % of scenarios), so the variance to "
                        "decompose is tiny; " if n_near else "")
            s.append(f"Caution: the Sobol indices of {n_wide} city rank{'s' if n_wide > 1 else ''} (over all fields) "
                     f"are unreliable: {near_txt}bootstrap intervals reach ±{widest:.3g} (marked × in the heat maps, "
                     "and left out of these sentences).")
    return s


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _poss(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _range_f(a: float, b: float) -> str:
    return f"{a:.2f}" if f"{a:.2f}" == f"{b:.2f}" else f"{a:.2f}–{b:.2f}"


# --------------------------------------------------------------------------------------------- HTML

CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa;--accent:#0b5cad}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:var(--fg);background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:1rem clamp(.75rem,3vw,2rem) 3rem}
h1{font-size:clamp(1.35rem,4.5vw,2rem);line-height:1.2;margin:.6rem 0 .3rem}
h2{font-size:clamp(1.15rem,3.5vw,1.45rem);margin:2.2rem 0 .6rem;padding-top:.6rem;border-top:1px solid var(--line)}
h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
p,li{max-width:75ch}
.sub{color:var(--muted);margin:.2rem 0 1rem}
.banner{border-radius:8px;padding:.75rem 1rem;margin:1rem 0;font-weight:600}
.synthetic{background:#fff1e0;border:2px solid #d9731a;color:#7a3a00}
.partial{background:#fdecec;border:2px solid #c62828;color:#7f1010}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(6.6rem,1fr));gap:.5rem;margin:1rem 0}
.tile{background:var(--soft);border:1px solid var(--line);border-radius:8px;padding:.4rem .6rem;line-height:1.3}
.tile b{display:block;font-size:1.15rem}
.tile span{color:var(--muted);font-size:.8rem}
.summary li{margin:.35rem 0}
nav.toc{background:var(--soft);border:1px solid var(--line);border-radius:8px;padding:.5rem 1rem;margin:1rem 0}
nav.toc ol{margin:.3rem 0;padding-left:1.3rem;columns:2 16rem}
a{color:var(--accent)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,480px),1fr));gap:1.2rem;align-items:start}
figure{margin:.8rem 0;min-width:0}
figure .frame{overflow-x:auto;-webkit-overflow-scrolling:touch}
figure img{display:block;max-width:100%;height:auto;margin:0 auto;border:1px solid #eef1f4;cursor:zoom-in}
figure.zoom img{max-width:none;cursor:zoom-out}
.hint{display:none}
@media (max-width:760px){figure.wide .hint{display:inline}}
figcaption{color:var(--muted);font-size:.88rem;margin-top:.35rem}
figcaption b{color:var(--fg)}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.6rem 0;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;font-size:.86rem;min-width:100%}
th,td{padding:.3rem .6rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap;vertical-align:top}
th{background:var(--soft);position:sticky;top:0}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.wrap{white-space:normal;min-width:14rem}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:.75rem;overflow-x:auto;font-size:.8rem}
details summary{cursor:pointer;color:var(--accent)}
footer{color:var(--muted);font-size:.8rem;margin-top:2.5rem}
@media (max-width:600px){body{font-size:15px}th,td{padding:.25rem .45rem}}
@media print{nav.toc{display:none}figure,table{break-inside:avoid}}
"""

SCRIPT = """
document.addEventListener("click", function (e) {  /* tap a figure: full size, scroll sideways */
  var t = e.target;
  if (t.tagName === "IMG" && t.closest("figure")) t.closest("figure").classList.toggle("zoom");
});
addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  var root = document.documentElement;
  root.setAttribute("data-images", String(imgs.length));
  root.setAttribute("data-images-ok", ok === imgs.length ? "yes" : "no (" + ok + " of " + imgs.length + ")");
});
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _table(head: list[str], rows: list[list], num: set[int] | None = None, wrap: set[int] | None = None) -> str:
    num, wrap = num or set(), wrap or set()

    def cls(j):
        c = "n" if j in num else ("wrap" if j in wrap else "")
        return f' class="{c}"' if c else ""

    th = "".join(f"<th{cls(j)}>{_e(h)}</th>" for j, h in enumerate(head))
    body = "".join("<tr>" + "".join(f"<td{cls(j)}>{v}</td>" for j, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="table-wrap"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure_html(f: _Fig) -> str:
    w, h = f.size
    cap = f"<b>{_e(f.title)}.</b> {_e(f.caption)}" if f.caption else f"<b>{_e(f.title)}</b>"
    hint = ' <span class="hint">(tap the figure for full size)</span>'
    wide = ' class="wide"' if f.wide else ""
    return (f'<figure id="fig-{f.slug}"{wide}><div class="frame"><img src="{f.uri()}" '
            f'width="{w}" height="{h}" alt="{_e(f.title)}"></div>'
            f"<figcaption>{cap}{hint}</figcaption></figure>")


def _field_table(ctx: _Context) -> str:
    a = ctx.a
    rows = []
    for f in ctx.fields:
        x = a.sel(field=f)
        w = x["rank_interval_width"].values
        key = np.lexsort((x["rank_abs_shift"].values, w))
        best, worst = key[0], key[-1]
        row = [_e(ctx.field_label[f]),
               f"{float(x['rbar_mean']):.2f}", f"{float(x['rbar_q05']):.2f}–{float(x['rbar_q95']):.2f}"]
        if "spearman_mean" in x:
            row += [f"{float(x['spearman_mean']):.3f}", f"{float(x['kendall_mean']):.3f}"]
        row += [_r(float(np.nanmedian(w))), f"{_e(ctx.name(a['city'].values[best]))} ({_r(w[best])})",
                f"{_e(ctx.name(a['city'].values[worst]))} ({_r(w[worst])})"]
        if ctx.sobol:
            st = x["ST_rbar"].values
            k = int(np.nanargmax(st))
            row.append(f"{_e(ctx.factor_names()[k])} ({st[k]:.2f})")
        rows.append(row)
    head = ["field", "R̄s mean", "R̄s 5–95 %"]
    if "spearman_mean" in a:
        head += ["Spearman ρ", "Kendall τ"]
    head += ["median interval width", "most robust city (width)", "least robust city (width)"]
    if ctx.sobol:
        head.append("main driver of R̄s (ST)")
    return _table(head, rows, num={1, 3, 4, 5} if "spearman_mean" in a else {1, 3})


def _city_table(ctx: _Context, fld: str = "overall") -> str:
    x = ctx.a.sel(field=fld)
    order = ctx.order(fld)
    cities = ctx.a["city"].values
    const = ctx.constant(fld) if ctx.has_rank_sobol else None
    st = ctx.sens("ST", fld) if ctx.has_rank_sobol else None
    near = ctx.nearly_constant(fld) if ctx.has_rank_sobol else None
    unrel = ctx.unreliable(fld) if ctx.has_rank_sobol else None
    names = ctx.factor_names()
    tops = [int(t) for t in ctx.a["top"].values]
    rows = []
    for i in order:
        pt = x["prob_top"].values[i]
        row = [str(int(x["rank_nominal"].values[i])), _e(ctx.name(cities[i])), _r(x["rank_median"].values[i]),
               f"{_r(x['rank_q05'].values[i])}–{_r(x['rank_q95'].values[i])}", f"{x['rank_mean'].values[i]:.2f}",
               f"{x['rank_abs_shift'].values[i]:.2f}", *(_pct(p) for p in pt)]
        if st is not None:
            if const[i]:
                row.append("rank never moves")
            elif near[i]:
                row.append("rank almost never moves ×")
            else:
                k = int(np.nanargmax(st[i]))
                flag = " ×" if unrel[i, k] else ""
                row.append(f"{_e(names[k])} ({min(st[i][k], 1):.2f}{flag})")
        rows.append(row)
    head = ["nominal", "city", "median", "5–95 %", "mean", "mean |shift|", *(f"P(top {t})" for t in tops)]
    if st is not None:
        head.append("main driver (ST)")
    return _table(head, rows, num={0, 2, 3, 4, 5, *range(6, 6 + len(tops))})


def _spec_table(ctx: _Context) -> str:
    f = ctx.factors
    if not f or "factor" not in f.dims:
        return "<p>No factors.</p>"
    rows = []
    for j in range(f.sizes["factor"]):
        def g(name, j=j):
            return str(f[name].values[j]) if name in f else ""
        kind, node, rng = g("factor_kind"), g("factor_node"), f["factor_range"].values[j] if "factor_range" in f else 0
        if kind == "weight":
            nw = ctx.node_weight.get(node)
            nominal = f"{nw:g}" if nw is not None else ""
            spread = f"× U[{1 - rng:g}, {1 + rng:g}] (±{100 * rng:g} %)"
        else:
            nominal = g("factor_nominal")
            spread = ""
        choices = g("factor_choices").replace("|", ", ")
        rows.append([_e(g("factor")), _e(kind), _e(node), spread, _e(choices), _e(nominal), _e(g("factor_group"))])
    return _table(["factor", "kind", "node", "range", "choices", "nominal", "group"], rows, wrap={4})


def _run_table(ctx: _Context) -> str:
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
        ("description", _spec_description(at)),
        ("dataset", f"{at.get('dataset', '')}: {ctx.dataset.get('title', '')}"
                    + ("  [SYNTHETIC]" if ctx.synthetic else "  [real data]")),
        ("dataset description", ctx.dataset.get("description", "")),
        ("dataset source", ctx.dataset.get("source", "")),
        ("shape", f"{ctx.a.sizes['city']} cities × {len([f for f in ctx.a['field'].values if f != 'overall'])} "
                  f"field(s) + overall"),
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
    return _table(["", ""], [[_e(k), _e(v)] for k, v in rows if v not in ("", None)], wrap={1})


def _spec_description(at: dict) -> str:
    m = re.search(r'^description\s*=\s*"(.*)"\s*$', at.get("spec_toml", ""), flags=re.M)
    return m.group(1) if m else ""


def _html(ctx: _Context, figs: dict[str, _Fig], elapsed: float) -> str:
    at = ctx.attrs
    name = at.get("spec_name") or ctx.path.stem
    title = f"rankstab report: {name}"
    n_cities = ctx.a.sizes["city"]
    n_fields = len([f for f in ctx.a["field"].values if f != "overall"])
    kind = "Sobol" if at.get("design_kind") == "sobol" else "Monte Carlo"
    n_fac = ctx.factors.sizes.get("factor", 0)
    head = [f"<h1>{_e(title)}</h1>",
            f'<p class="sub">{_e(_spec_description(at) or ctx.dataset.get("title", ""))}</p>']
    if ctx.synthetic:
        head.append(f'<div class="banner synthetic">SYNTHETIC DATA: the dataset “{_e(at.get("dataset", ""))}” is '
                    "reconstructed demo data, not real indicator data. These results illustrate the method and say "
                    "nothing reliable about the real cities (see the annex).</div>")
    if ctx.a.attrs.get("partial"):
        head.append('<div class="banner partial">PARTIAL: this analysis covers only the completed part of an '
                    f"unfinished Monte Carlo run ({int(ctx.a.attrs.get('n_stability_scenarios', 0)):,} scenarios)."
                    "</div>")
    tiles = [(f"{int(at.get('n_scenarios', 0)):,}", "scenarios"), (kind, "design"), (str(n_fac), "factors"),
             (str(n_cities), "cities"), (f"{n_fields} + 1", "fields + overall"),
             (f"{float(ctx.a['rbar_mean'].sel(field='overall')):.2f}", "mean rank shift R̄s")]
    head.append('<div class="tiles">' + "".join(f'<div class="tile"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
                                               for v, k in tiles) + "</div>")
    sections = []  # (id, title, html)
    summary = _summary(ctx)
    sections.append(("summary", "Summary", '<ul class="summary">' + "".join(f"<li>{s}</li>" for s in summary)
                     + "</ul>"))
    rank_figs = [figs[f"rank {f}"] for f in ctx.fields]
    sections.append(("ranks", "Rank uncertainty",
                     "<p>How far each city's rank moves over the scenarios (JRC style), one chart per field. Cities "
                     "in nominal order; bar: the 5–95 % interval of the rank over the scenarios (R type-7 "
                     "percentiles); dark dot: the nominal rank; orange diamond: the median rank.</p>"
                     + '<div class="grid">' + "".join(_figure_html(f) for f in rank_figs) + "</div>"))
    if ctx.sobol:
        body = ("<p>Sobol indices attribute the variance of an output to the methodology factors: S1 is the share "
                "a factor explains on its own, ST includes every interaction it takes part in (ST ≥ S1 up to "
                "estimation noise; ΣS1 ≤ 1).</p>")
        body += '<div class="grid">' + _figure_html(figs["rbar"]) + (
            _figure_html(figs["rbar fields"]) if "rbar fields" in figs else "") + "</div>"
        if ctx.has_rank_sobol:
            body += ("<h3>By city</h3><p>Total-effect (ST, left) and first-order (S1, right) index of every "
                     "city's rank for every factor, one chart per field, cities in nominal order. Grey rows: the "
                     f"rank never moves. Red ×: an unreliable index — the rank almost never moves (≈fixed: the same "
                     f"rank in ≥ {100 * ctx.rare_share:.0f} % of scenarios) or its bootstrap interval is wider than "
                     f"±{CONF_LIMIT:g}. Colours are clipped to 0–1.</p>" + "".join(_figure_html(figs[f"sobol {f}"]) for f in ctx.fields))
        sections.append(("sensitivity", "What drives the ranks (Sobol sensitivity)", body))
    rob = []
    if "width" in figs:
        rob.append(_figure_html(figs["width"]))
    rob.append(_figure_html(figs["acceptability"]))
    if "pairs" in figs:
        rob.append(_figure_html(figs["pairs"]))
    sections.append(("robustness", "Robustness across fields and rank acceptability",
                     '<div class="grid">' + "".join(rob) + "</div>"))
    sections.append(("fields", "Fields", "<p>Per field: the mean rank shift R̄s, the correlation of the "
                     "scenario rankings with the nominal one, and the width of the 5–95 % rank intervals.</p>"
                     + _field_table(ctx)))
    sections.append(("cities", "Overall ranking, city by city", _city_table(ctx)))
    spec_toml = at.get("spec_toml", "")
    sections.append(("annex", "Annex: the run and its specification",
                     "<h3>Run</h3>" + _run_table(ctx) + "<h3>Methodology factors</h3>" + _spec_table(ctx)
                     + (f"<details><summary>Spec file (TOML)</summary><pre>{_e(spec_toml)}</pre></details>"
                        if spec_toml else "")))
    toc = '<nav class="toc"><b>Contents</b><ol>' + "".join(f'<li><a href="#{i}">{_e(t)}</a></li>'
                                                          for i, t, _ in sections) + "</ol></nav>"
    body = "".join(f'<section id="{i}"><h2>{_e(t)}</h2>{h}</section>' for i, t, h in sections)
    foot = (f"<footer>Written by rankstab {_e(_version())} from {_e(ctx.path.name)} "
            f"in {elapsed:.1f} s. Self-contained: no network resources.</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{_e(title)}</title><style>{CSS}</style><script>{SCRIPT}</script></head>"
            f"<body><main>{''.join(head)}{toc}{body}{foot}</main></body></html>\n")


def _version() -> str:
    from . import __version__

    return __version__
