"""The report's cheap category labels draw the very pixels of matplotlib's own ticks (the reference: the same
figure drawn with ``set_xticks``/``set_yticks`` and ``tick_params``)."""

from __future__ import annotations

import io

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
