"""The drawing toolkit of the figures: fixed layouts, cheap category labels, heat maps, PNG encoding.

Everything is drawn with matplotlib's Agg backend directly (no pyplot, no layout engine). Texts dominate
the cost of a figure (a report draws ~2,500 of them: city names, factor names, numbers), so:

* :class:`Layout` places the axes in inches with margins measured from the actual label texts, so no
  constrained-layout passes;
* :func:`category_labels` draws the labels of categorical ticks (45 city names, a factor per column) as
  plain texts and the tick marks as one marker line per side, at exactly the places
  ``ax.set_yticks(range(n), labels)`` would put them, instead of n ``Tick`` objects of five artists each;
* :func:`png` renders with :class:`TextCachingRenderer`: each distinct string is laid out and rasterised
  once per process and then copied, at a whole pixel, wherever it is drawn again (as matplotlib did up to
  3.9; since 3.10 it lays out and rasterises every glyph of every text at a sub-pixel position).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.colors as mcolors
import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import TICKDOWN, TICKLEFT, TICKRIGHT, TICKUP, Line2D
from matplotlib.text import Text

DPI = 100
ANNOTATE_MAX = 400  # annotate heat-map cells only up to this many cells per panel
HEAT_TICK = {"length": 2.0, "pad": 2.0}  # tick length and label pad (points) of the heat maps
PNG_OPTIONS = {"compress_level": 1}  # zlib level of the PNGs: level 6 costs ~10 % of a figure, saves ~6 %


class Layout:
    """A figure laid out in inches: fixed margins measured from the actual label texts, so no
    constrained-layout passes (the text layout dominates the rendering time otherwise)."""

    def __init__(self, left: float, panels: list[float], height: float, top: float, bottom: float,
                 gap: float = 0.25, cbar: float = 0.0, right: float = 0.15) -> None:
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
GAP = "  "  # between the prefix and the text of a Prefixed label


@dataclass(frozen=True)
class Prefixed:
    """Labels drawn as '<prefix>  <text>' (a rank and a city name): the two parts are laid out and rasterised
    separately, so a city name that several charts show at different ranks is laid out once (placed as in
    the whole string to within a pixel)."""

    prefixes: tuple[str, ...]
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def __iter__(self):
        return (f"{p}{GAP}{t}" for p, t in zip(self.prefixes, self.texts, strict=True))


def _renderer() -> TextCachingRenderer:
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = TextCachingRenderer(10, 10, DPI)
    return _RENDERER


def text_width(labels: Sequence | Prefixed, size: float) -> float:
    """Width in inches of the widest label at a font size (measured with the Agg renderer)."""
    r, prop = _renderer(), FontProperties(size=size)

    def w(t: str) -> float:
        return r.get_text_width_height_descent(t, prop, ismath=False)[0] if t else 0.0

    if isinstance(labels, Prefixed):
        gap = gap_width(r, prop)
        widths = [w(p) + gap + w(t) for p, t in zip(labels.prefixes, labels.texts, strict=True)]
    else:
        widths = [w(str(t)) for t in labels if str(t)]
    return max(widths, default=0.0) / DPI


def gap_width(renderer, prop: FontProperties) -> float:
    """Pixels between the end of a prefix and the start of its text, as in the whole string ('0  0')."""
    def w(t: str) -> float:
        return renderer.get_text_width_height_descent(t, prop, ismath=False)[0]

    return w(f"0{GAP}0") - 2 * w("0")


def category_labels(ax, axis: str, labels: Sequence[str] | Prefixed, fontsize: float, *,
                    sides: Sequence[str] | None = None, rotation: float = 0.0, length: float | None = None,
                    pad: float | None = None) -> None:
    """Label positions 0, 1, ..., n-1 of an axis (``axis`` 'x' or 'y') with ``labels``, tick marks and labels on
    ``sides`` (default: bottom or left): the same pixels as ``ax.set_xticks(range(n), labels, fontsize=...,
    rotation=...)`` with ``ax.tick_params(length=length, pad=pad)``, at a fraction of the cost. ``Prefixed``
    labels (left y axis only) draw their prefixes and texts apart."""
    name = f"{axis}tick"
    rc = mpl.rcParams
    direction = rc[f"{name}.direction"]
    length = rc[f"{name}.major.size"] if length is None else length
    pad = (rc[f"{name}.major.pad"] if pad is None else pad) + length * _PAD_SHARE[direction]
    color = rc[f"{name}.color"]
    labelcolor = color if rc[f"{name}.labelcolor"] == "inherit" else rc[f"{name}.labelcolor"]
    pos = np.arange(len(labels), dtype=float)
    (ax.set_xticks if axis == "x" else ax.set_yticks)([])
    for side in sides or (("bottom",) if axis == "x" else ("left",)):
        first = side in ("bottom", "left")
        edge = np.full_like(pos, 0.0 if first else 1.0)
        if axis == "x":
            xy, mark_tr = (pos, edge), ax.get_xaxis_transform("tick1" if first else "tick2")
            text_tr, va, ha = (ax.get_xaxis_text1_transform if first else ax.get_xaxis_text2_transform)(pad)
        else:
            xy, mark_tr = (edge, pos), ax.get_yaxis_transform("tick1" if first else "tick2")
            text_tr, va, ha = (ax.get_yaxis_text1_transform if first else ax.get_yaxis_text2_transform)(pad)
        marks = Line2D(*xy, linestyle="none", marker=_markers(axis, direction)[0 if first else 1], markersize=length,
                       markeredgewidth=rc[f"{name}.major.width"], color=color, markeredgecolor=color,
                       transform=mark_tr)
        prefixed = isinstance(labels, Prefixed)
        texts = Texts(*xy, list(labels.texts) if prefixed else [str(label) for label in labels], text_tr,
                      fontsize=fontsize, ha=ha, va=va, rotation=rotation, colors=labelcolor,
                      prefixes=labels.prefixes if prefixed else None)
        ax.add_artist(_Group([marks, texts], zorder=(ax.xaxis if axis == "x" else ax.yaxis).get_zorder()))


class Texts(Artist):
    """Many one-line texts of one font, alignment and rotation, each drawn exactly as a ``Text`` would draw it,
    without a ``Text`` object each: matplotlib lays out each distinct string once (``Text._get_layout``, on a
    prototype text; the offset of its baseline from the anchor is kept), and every text is then one
    ``renderer.draw_text`` at its anchor plus that offset. Unclipped, like a figure's texts. A string that
    is math text is drawn by a ``Text`` of its own. With ``prefixes`` (right-aligned, unrotated texts only),
    each prefix is drawn right-aligned before its text, :data:`GAP` apart."""

    _offsets: dict = {}  # (string, font, alignment, rotation, dpi, renderer type) -> offset in pixels

    def __init__(self, x: Sequence[float], y: Sequence[float], labels: Sequence[str], transform, *,
                 fontsize: float, ha: str = "left", va: str = "baseline", rotation: float = 0.0,
                 colors: str | Sequence[str] = "black", prefixes: Sequence[str] | None = None) -> None:
        super().__init__()
        if prefixes is not None and (ha != "right" or rotation or len(prefixes) != len(labels)):
            raise ValueError("prefixes need one per label, right-aligned and unrotated texts")
        self._prefixes = None if prefixes is None else list(prefixes)
        self._xy = np.column_stack([np.asarray(x, float), np.asarray(y, float)])
        self._labels = list(labels)
        self._text_transform = transform
        self._proto = Text(0, 0, "", ha=ha, va=va, rotation=rotation, fontsize=fontsize)
        many = not isinstance(colors, str)
        self._rgba = [mcolors.to_rgba(c) for c in colors] if many else [mcolors.to_rgba(colors)] * len(labels)

    @property
    def texts(self) -> list[str]:
        return list(self._labels)

    def set_figure(self, fig) -> None:
        super().set_figure(fig)
        self._proto.set_figure(fig)

    def draw(self, renderer) -> None:
        if not self.get_visible() or not self._labels:
            return
        proto = self._proto
        anchors = self._text_transform.transform(self._xy)
        height = renderer.get_canvas_width_height()[1]
        angle = proto.get_rotation()
        key = (_font_key(proto.get_fontproperties()), proto.get_horizontalalignment(),
               proto.get_verticalalignment(), proto.get_rotation_mode(), angle, renderer.dpi, type(renderer))
        gc = renderer.new_gc()
        gc.set_antialiased(proto.get_antialiased())
        gap = None
        for k, ((x, y), s, rgba) in enumerate(zip(anchors, self._labels, self._rgba, strict=True)):
            if not s or not (np.isfinite(x) and np.isfinite(y)):
                continue
            if proto._preprocess_math(s)[1]:  # math text: a Text of its own
                own = Text(*self._xy[k], s, transform=self._text_transform, fontproperties=proto.get_fontproperties(),
                           ha=proto.get_horizontalalignment(), va=proto.get_verticalalignment(), rotation=angle,
                           color=rgba)
                own.set_figure(self.get_figure(root=False))
                own.draw(renderer)
                continue
            off = self._offset(renderer, s, key)
            gc.set_foreground(rgba, isRGBA=True)
            renderer.draw_text(gc, x + off[0], height - (y + off[1]), s, proto.get_fontproperties(), angle,
                               ismath=False, mtext=None)
            if self._prefixes is not None and self._prefixes[k]:
                pre = self._prefixes[k]
                if gap is None:
                    gap = gap_width(renderer, proto.get_fontproperties())
                poff = self._offset(renderer, pre, key)
                renderer.draw_text(gc, x + off[0] - gap + poff[0], height - (y + poff[1]), pre,
                                   proto.get_fontproperties(), angle, ismath=False, mtext=None)
        gc.restore()
        self.stale = False

    def _offset(self, renderer, s: str, key: tuple) -> tuple[float, float]:
        """The offset of a string's pen from its anchor, in pixels (matplotlib's layout, once per string)."""
        off = self._offsets.get((s, *key))
        if off is None:
            self._proto.set_text(s)
            if len(self._offsets) >= TextCachingRenderer.MAX_ENTRIES:
                self._offsets.clear()
            off = self._offsets[(s, *key)] = self._proto._get_layout(renderer)[1][0][2]
        return off


class _Group(Artist):
    """Artists drawn together, in order and unclipped, at one z-order: the tick marks and labels of one side
    (where the axis would draw its ticks), or the numbers of a heat map."""

    def __init__(self, parts: list[Artist], zorder: float) -> None:
        super().__init__()
        self._parts = parts
        self.set_zorder(zorder)

    @property
    def parts(self) -> list[Artist]:
        return list(self._parts)

    def set_figure(self, fig) -> None:
        super().set_figure(fig)
        for part in self._parts:
            part.set_figure(fig)

    def draw(self, renderer) -> None:
        for part in self._parts:
            part.draw(renderer)


_PAD_SHARE = {"in": 0.0, "inout": 0.5, "out": 1.0}  # share of the tick length outside the axes (as Tick)


def _markers(axis: str, direction: str) -> tuple:
    """The tick markers of the first and the second side (as matplotlib's XTick and YTick)."""
    if axis == "x":
        return {"out": (TICKDOWN, TICKUP), "in": (TICKUP, TICKDOWN), "inout": ("|", "|")}[direction]
    return {"out": (TICKLEFT, TICKRIGHT), "in": (TICKRIGHT, TICKLEFT), "inout": ("_", "_")}[direction]


def heat(ax, M: np.ndarray, cmap: str, vmin: float, vmax: float, annotate_fmt: Callable[[float], str] | None = None,
         mask: np.ndarray | None = None, flag: np.ndarray | None = None):
    """imshow of M (masked cells grey), numbers written in the cells when there are few enough, and a red ×
    instead of the number in ``flag`` cells."""
    cm = mpl.colormaps[cmap].with_extremes(bad="#d9d9d9")
    bad = np.isnan(M) if mask is None else (mask | np.isnan(M))
    im = ax.imshow(np.ma.masked_array(M, mask=bad), cmap=cm, vmin=vmin, vmax=vmax, aspect="auto",
                   interpolation="nearest")
    if annotate_fmt and M.size <= ANNOTATE_MAX:
        r, g, b, _ = np.moveaxis(cm((np.clip(M, vmin, vmax) - vmin) / (vmax - vmin)), -1, 0)
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # white numbers on dark cells
        cells = [(i, j, txt) for (i, j), v in np.ndenumerate(M)
                 if (txt := "" if bad[i, j] or (flag is not None and flag[i, j]) else annotate_fmt(v))]
        if cells:
            i, j, txt = zip(*cells, strict=True)
            texts = Texts(j, i, txt, ax.transData, fontsize=6.5, ha="center", va="center",
                          colors=["white" if dark[a, b] else "black" for a, b in zip(i, j, strict=True)])
            ax.add_artist(_Group([texts], zorder=Text.zorder))  # as ax.text() each, without a clip path each
    if flag is not None and flag.any():
        i, j = np.nonzero(flag)
        ax.scatter(j, i, marker="x", s=16, color="#ff3030", linewidths=1.0, zorder=3)
    ax.tick_params(length=HEAT_TICK["length"], pad=HEAT_TICK["pad"])
    return im


class TextCachingRenderer(RendererAgg):
    """matplotlib's Agg renderer, with every plain text's metrics and glyph bitmap computed once per process
    (keyed by the string, the font properties, the DPI, hinting and antialiasing) and each drawing of it a
    copy of the bitmap at the nearest whole pixel: matplotlib's own text drawing up to version 3.9 (its
    FreeType layout of the whole string; rotated texts placed about their own axes). Math text, TeX and texts
    with font features or a language go to matplotlib's own path."""

    _cache: dict = {}  # shared by every instance of the process
    MAX_ENTRIES = 20_000  # cleared when full

    def get_text_width_height_descent(self, s, prop, ismath):
        if ismath:
            return super().get_text_width_height_descent(s, prop, ismath)
        return self._text(s, prop, True)[0]

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if ismath or (mtext is not None and (mtext.get_fontfeatures() or mtext.get_language())):
            return super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
        _, image, d, xo, yo = self._text(s, prop, bool(gc.get_antialiased()))
        # the bitmap's lower left corner: (xo, d + yo) from the pen in the text's own axes (right, down), and
        # one pixel down (Agg's rows); draw_text_image rotates the bitmap about that corner
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        corner_x = round(x + xo * cos + (d + yo) * sin) + round(sin)
        corner_y = round(y - xo * sin + (d + yo) * cos) + round(cos)
        self._renderer.draw_text_image(image, corner_x, corner_y, angle, gc)

    def _text(self, s: str, prop: FontProperties, antialiased: bool) -> tuple:
        """((width, height, descent), glyph bitmap, descent, x and y offsets of the bitmap) of a string, in
        pixels: laid out and rasterised on the first call, from the cache after."""
        key = (s, _font_key(prop), self.dpi, get_hinting_flag(), antialiased)
        hit = self._cache.get(key)
        if hit is None:
            font = self._prepare_font(prop)
            font.set_text(s, 0, flags=get_hinting_flag())
            w, h = font.get_width_height()
            d = font.get_descent() / 64.0
            font.draw_glyphs_to_bitmap(antialiased=antialiased)
            xo, yo = font.get_bitmap_offset()
            if len(self._cache) >= self.MAX_ENTRIES:
                self._cache.clear()
            hit = self._cache[key] = ((w / 64.0, h / 64.0, d), np.array(font.get_image()), d, xo / 64.0, yo / 64.0)
        return hit


def _font_key(prop: FontProperties) -> tuple:
    return (tuple(prop.get_family()), prop.get_style(), prop.get_variant(), prop.get_weight(), prop.get_stretch(),
            prop.get_size_in_points(), prop.get_file())


class _Canvas(FigureCanvasAgg):
    """The Agg canvas, drawing with :class:`TextCachingRenderer`."""

    def get_renderer(self):  # as FigureCanvasAgg.get_renderer
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key:
            self.renderer = TextCachingRenderer(w, h, self.figure.dpi)
            self._lastKey = key
        return self.renderer


def png(fig) -> tuple[bytes, tuple[int, int]]:
    """The figure as PNG bytes and its size in pixels."""
    _Canvas(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs=dict(PNG_OPTIONS))
    data = buf.getvalue()
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return data, (w, h)
