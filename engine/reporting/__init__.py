"""The self-contained HTML report of an analysed run: ``rankstab report results/NAME.zarr``.

One HTML file, readable offline on a phone or a desktop: every figure is a base64 PNG ``data:`` URI
(matplotlib, Agg backend), the CSS and the one tiny script are inline, and a Content-Security-Policy
forbids any network access. Contents:

* a written summary generated from the numbers (flagged prominently when the dataset is synthetic);
* the JRC-style rank uncertainty chart of every field (nominal and median rank, 5-95 % interval);
* Sobol runs: city x factor heat maps of the total (ST) and first-order (S1) indices of every rank, and
  the S1/ST bar chart of the mean rank shift R-bar with bootstrap confidence intervals;
* Monte Carlo runs: the same from the given-data indices (Borgonovo's delta and S1_given): delta and S1 of
  R-bar as bars and by field with their intervals (and a table of every factor's numbers), the three
  factors of largest delta on each top city's rank, and city x factor heat maps of every field;
* the field x city map of rank-interval widths, the rank-acceptability matrix P(rank = r), the pairwise
  probabilities of the top cities of the overall ranking, and the SMAA-2 table (P(rank 1), confidence
  factors and central weights of the cities that ever rank first);
* tables: per field, per city (overall ranking), and the run and its spec as an annex.

Each figure's ``<figure>`` names the analysis variables it draws (``data-vars``); the tables have ids.

``--png-dir`` also writes every figure as a PNG file. The analysis group is computed first when the store
has none (or a stale one).

The rooms: :mod:`.context` loads the run, :mod:`.figures` has one function per figure (drawn on every core
by :mod:`.drawing` with the toolkit of :mod:`.canvas`), :mod:`.text` writes the sentences, :mod:`.tables`
the tables, and :mod:`.page` renders ``templates/report.html.j2`` (with ``report.css`` and ``report.js``).
"""

from __future__ import annotations

import time
from pathlib import Path

import xarray as xr

from ..store import check_store
from .context import Context
from .drawing import draw_all
from .figures import plan
from .files import html_path, make_folder, png_folder, store_path, write_bytes, write_text
from .page import render

__all__ = ["report", "report_cli"]


def report(store: str | Path | xr.Dataset, out: str | Path | None = None,
           png_dir: str | Path | None = None) -> Path:
    """Write the self-contained HTML report (default: next to the store, NAME.html); return its path."""
    t0 = time.perf_counter()
    path = check_store(store_path(store))  # a missing store, before anything about the output
    out_path = html_path(path, out)
    png_path = png_folder(png_dir) if png_dir is not None else None  # checked now, made when written
    ctx = Context.load(path)  # a missing or unanalysable store fails before anything is created
    figs = draw_all(ctx, plan(ctx))
    page = render(ctx, figs, time.perf_counter() - t0)
    write_text(out_path, page)
    if png_path is not None:
        make_folder(png_path)
        for fig in figs.values():
            write_bytes(png_path / f"{fig.slug}.png", fig.png)
    return out_path


def report_cli(args) -> int:
    path = report(args.store, out=args.out, png_dir=args.png_dir)
    print(path)
    return 0
