"""The report's drawing toolkit against matplotlib's own drawing: the cheap category labels are the very pixels
of real ticks (the same figure drawn with ``set_xticks``/``set_yticks`` and ``tick_params``), a heat map's
numbers those of one ``Text`` per cell, and the text-caching renderer draws matplotlib's texts at whole
pixels."""

from __future__ import annotations

import io

import matplotlib as mpl
import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from engine.reporting.canvas import category_labels

NAMES = ["1  New York", "2  Tokyo", "3  São Paulo (≈fixed)", "w_KNOWLEDGE", "normalisation", "45  Dusseldorf"]


def pixels(fig) -> np.ndarray:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return mpimg.imread(io.BytesIO(buf.getvalue()), format="png")


def heat_axes():
    fig = Figure(figsize=(4.5, 4.0), dpi=100)
    ax = fig.add_axes((0.35, 0.3, 0.45, 0.45))
    ax.imshow(np.arange(36.0).reshape(6, 6), aspect="auto", interpolation="nearest")
    return fig, ax


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("sides", [None, ("bottom", "top"), ("top",)], ids=["default", "both", "second"])
@pytest.mark.parametrize("params", [{}, {"length": 2.0, "pad": 2.0}], ids=["rc", "short"])
@pytest.mark.parametrize("rotation", [0, 90])
def test_category_labels_draw_the_pixels_of_real_ticks(axis, sides, params, rotation):
    if axis == "y" and sides is not None:
        sides = tuple({"bottom": "left", "top": "right"}[s] for s in sides)
    first, second = ("bottom", "top") if axis == "x" else ("left", "right")
    on = sides or (first,)

    fig, ax = heat_axes()  # the reference: matplotlib's ticks
    if params:
        ax.tick_params(**params)
    (ax.set_xticks if axis == "x" else ax.set_yticks)(range(len(NAMES)), NAMES, fontsize=7.5, rotation=rotation)
    ax.tick_params(axis=axis, **{first: first in on, f"label{first}": first in on,
                                 second: second in on, f"label{second}": second in on})
    want = pixels(fig)

    fig, ax = heat_axes()
    if params:
        ax.tick_params(**params)  # the other axis keeps its real ticks
    category_labels(ax, axis, NAMES, 7.5, sides=sides, rotation=rotation, **params)
    got = pixels(fig)
    assert got.shape == want.shape
    assert np.array_equal(got, want), f"{int((np.abs(got - want).max(axis=-1) > 0).sum())} pixels differ"


def test_labels_do_not_move_the_view_limits():
    fig, ax = heat_axes()
    before = ax.get_xlim(), ax.get_ylim()
    category_labels(ax, "x", NAMES, 8)
    category_labels(ax, "y", NAMES, 8)
    assert (ax.get_xlim(), ax.get_ylim()) == before
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []  # no real ticks left



def one_text(text: str, x: float, y: float, **kw) -> Figure:
    fig = Figure(figsize=(3.0, 3.0), dpi=100)
    fig.text(x / 300, y / 300, text, **kw)  # x, y in pixels
    return fig


def ink_centre(img: np.ndarray) -> tuple[float, np.ndarray]:
    """Total ink (1 - grey) and its centre of mass (row, column) in pixels."""
    w = 1 - img[..., :3].mean(axis=-1)
    rows, cols = np.indices(w.shape)
    return float(w.sum()), np.array([(rows * w).sum(), (cols * w).sum()]) / w.sum()


@pytest.mark.parametrize("text", ["1  New York", "45  Dusseldorf (≈fixed)", "w_KNOWLEDGE", ".41",
                                  "What drives the mean rank shift R̄s (overall)"])
@pytest.mark.parametrize("rotation", [0, 90])
@pytest.mark.parametrize("size,weight", [(6.5, "normal"), (8, "normal"), (10, "bold")])
def test_text_caching_renderer_draws_matplotlibs_texts_at_whole_pixels(text, rotation, size, weight):
    """The report's renderer draws a text as matplotlib lays it out, rasterised once and placed at the
    nearest whole pixel (the reference: matplotlib's renderer, which places every glyph at a sub-pixel
    position): the same ink within 2 %, its centre at most 0.6 pixel away across the text and 1.25 pixels
    along it (the whole string's hinted advances), at any sub-pixel position; a cached text is the same
    pixels as a fresh one."""
    from engine.reporting.canvas import TextCachingRenderer, png

    kw = dict(fontsize=size, fontweight=weight, rotation=rotation, ha="left", va="baseline")
    along = 1 if rotation == 0 else 0  # the image axis (row 0, column 1) along the text
    for frac in (0.0, 0.25, 0.5, 0.75):
        x, y = 20 + frac, 150 - frac / 2
        want = pixels(one_text(text, x, y, **kw))
        TextCachingRenderer._cache.clear()
        cold = mpimg.imread(io.BytesIO(png(one_text(text, x, y, **kw))[0]), format="png")
        warm = mpimg.imread(io.BytesIO(png(one_text(text, x, y, **kw))[0]), format="png")
        assert np.array_equal(cold, warm)
        (ink_got, at_got), (ink_want, at_want) = ink_centre(cold), ink_centre(want)
        assert ink_got == pytest.approx(ink_want, rel=0.02)
        off = np.abs(at_got - at_want)
        assert off[along] <= 1.25 and off[1 - along] <= 0.6, (frac, at_got, at_want)


def test_heat_map_numbers_draw_the_pixels_of_matplotlib_texts():
    """The numbers of a heat map (one Texts artist) are the pixels of one unclipped ``ax.text`` per cell (the
    reference), white on dark cells and black on light ones, none in masked or flagged cells."""
    from matplotlib.text import Text

    from engine.reporting.canvas import heat

    M = np.linspace(0, 1, 30).reshape(5, 6)
    mask = np.zeros_like(M, bool)
    mask[1, 2] = True
    flag = np.zeros_like(M, bool)
    flag[3, 4] = True

    def fmt(v):
        return f"{v:.2f}".lstrip("0")

    def figure():
        fig = Figure(figsize=(4.5, 4.0), dpi=100)
        return fig, fig.add_axes((0.2, 0.2, 0.6, 0.6))

    fig, ax = figure()
    heat(ax, M, "viridis", 0, 1, fmt, mask, flag=flag)
    got = pixels(fig)

    fig, ax = figure()
    heat(ax, M, "viridis", 0, 1, None, mask, flag=flag)  # the same map without numbers, then matplotlib's texts
    cm = mpl.colormaps["viridis"]
    for (i, j), v in np.ndenumerate(M):
        if not (mask[i, j] or flag[i, j]):
            r, g, b, _ = cm(v)
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.add_artist(Text(j, i, fmt(v), ha="center", va="center", fontsize=6.5,
                               color="white" if dark else "black", transform=ax.transData, zorder=Text.zorder))
    want = pixels(fig)
    assert np.array_equal(got, want), f"{int((np.abs(got - want).max(axis=-1) > 0).sum())} pixels differ"
    assert (np.abs(got - pixels(figure()[0])) > 0).any()  # there is something drawn at all


@pytest.mark.parametrize("fontsize", [7.5, 8])
def test_prefixed_labels_place_rank_and_name_as_the_whole_string(fontsize):
    """A rank and a city name drawn apart (Prefixed) land where matplotlib's ticks put the whole '12  Tokyo'
    (the reference: real tick labels): every row's ink within 3 %, its left and right ends and the gap
    between rank and name within two pixels (each part is placed at a whole pixel; matplotlib places every
    glyph at a sub-pixel position)."""
    from engine.reporting.canvas import Prefixed, png

    ranks = ("1", "2", "13", "7", "45", "–", "100", "21", "9")
    names = ("Tokyo", "Beijing", "New York", "São Paulo (≈fixed)", "Dusseldorf", "Xi'an", "Washington DC",
             "Hong Kong", "Zürich")

    def figure():
        fig = Figure(figsize=(3.5, 0.3 * len(names)), dpi=100)
        ax = fig.add_axes((0.6, 0.0, 0.35, 1.0))
        ax.set_ylim(len(names) - 0.5, -0.5)
        return fig, ax

    fig, ax = figure()
    ax.set_yticks(range(len(names)), [f"{r}  {n}" for r, n in zip(ranks, names, strict=True)], fontsize=fontsize)
    want = pixels(fig)
    fig, ax = figure()
    category_labels(ax, "y", Prefixed(ranks, names), fontsize)
    got = mpimg.imread(io.BytesIO(png(fig)[0]), format="png")
    assert got.shape == want.shape
    for k in range(len(names)):  # one row of labels per 30 pixels
        rows = slice(30 * k + 2, 30 * k + 28)
        a, b = (1 - img[rows, :205, :3].mean(axis=-1) for img in (got, want))  # left of the axes' spine
        assert a.sum() == pytest.approx(b.sum(), rel=0.03), names[k]
        ca, cb = (np.nonzero(x.max(axis=0) > 0.15)[0] for x in (a, b))
        assert abs(ca.min() - cb.min()) <= 2 and abs(ca.max() - cb.max()) <= 2, names[k]
        # the first gap wider than between two glyphs: between rank and name
        gaps = [next((c[i], c[i + 1]) for i in range(len(c) - 1) if c[i + 1] - c[i] > 3) for c in (ca, cb)]
        assert np.abs(np.array(gaps[0]) - np.array(gaps[1])).max() <= 2, (names[k], gaps)
