"""Drawing the planned figures into PNGs, on every core.

The figures are independent, and drawing them is pure-Python matplotlib work that holds the GIL, so they
are drawn by a pool of processes *forked* from this one: a child inherits the loaded :class:`Context` and
the imported matplotlib, and sends back only the PNG bytes. The objects that exist before drawing are
frozen out of the garbage collector (``gc.freeze``): its full collections, which otherwise traverse every
object of the process (the run, pandas, xarray, Dask) while a figure's thousands of artists are made,
only see the new ones. Where ``fork`` is not available, on one core,
or if the pool fails, the figures are drawn here, one after the other (the same PNGs).
"""

from __future__ import annotations

import base64
import gc
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from .canvas import png, text_width
from .context import Context
from .figures import FigurePlan

MAX_WORKERS = 8


@dataclass
class DrawnFigure:
    """A figure as the page shows it."""

    slug: str
    section: str
    title: str
    caption: str
    png: bytes
    size: tuple[int, int]  # pixels
    wide: bool = False
    data: tuple[str, ...] = ()  # the analysis variables it draws
    cpu: float = 0.0  # CPU seconds its drawing took ...
    pid: int = 0  # ... in this process (the benchmark's measure of the busiest core)

    @property
    def uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def draw_all(ctx: Context, plans: list[FigurePlan], workers: int | None = None) -> dict[str, DrawnFigure]:
    """Every planned figure drawn, by key in plan order. ``workers``: processes (default: the usable cores,
    at most :data:`MAX_WORKERS`; 1 draws here)."""
    if workers is None:
        workers = min(_cores(), MAX_WORKERS)
    workers = min(workers, len(plans))
    pngs = None
    gc.freeze()  # the loaded run and the imported modules: never traversed by the collections while drawing
    try:
        if workers > 1 and _can_fork():
            pngs = _draw_forked(ctx, plans, workers)
        if pngs is None:
            pngs = [_draw(ctx, p) for p in plans]
    finally:
        gc.unfreeze()
    return {p.key: DrawnFigure(p.slug, p.section, p.title, p.caption, data, size, p.wide, p.data, cpu, pid)
            for p, (data, size, cpu, pid) in zip(plans, pngs, strict=True)}


def _draw(ctx: Context, p: FigurePlan) -> tuple[bytes, tuple[int, int], float, int]:
    c0 = time.process_time()
    data, size = png(p.draw(ctx, *p.args))
    return data, size, time.process_time() - c0, os.getpid()


# what the forked children draw: set in the parent just before the fork, inherited, never pickled
_JOB: tuple[Context, list[FigurePlan]] | None = None


def _draw_index(i: int) -> tuple[bytes, tuple[int, int], float, int]:
    ctx, plans = _JOB
    return _draw(ctx, plans[i])


def _draw_forked(ctx: Context, plans: list[FigurePlan], workers: int) -> list | None:
    """The PNGs drawn by ``workers`` forked processes, or None if the pool could not do it."""
    global _JOB
    _warm_up(ctx)
    _JOB = (ctx, plans)
    # the costliest figures (most labels) first, so that the cores finish together
    order = sorted(range(len(plans)), key=lambda i: -_cost(plans[i]))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork() in a process with threads (zarr's I/O thread, say); the children
            # only draw in memory and never touch what those threads hold
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            futures = {i: pool.submit(_draw_index, i) for i in order}  # the first submit forks the children
        return [futures[i].result() for i in range(len(plans))]  # a figure's own error is raised here
    except (BrokenProcessPool, OSError):  # a child died, or fork failed (no memory, process limit)
        return None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _JOB = None


def _warm_up(ctx: Context) -> None:
    """Do here, once, what the first figure of every child would do again: load the font, and index the
    analysis once (xarray then imports dask.array to check for dask arrays, ~0.2 s)."""
    text_width(["0"], 8)
    ctx.order(ctx.fields[0])


def _cost(p: FigurePlan) -> int:
    """A rough relative cost of drawing a figure (the city x factor heat maps have the most texts)."""
    return 3 if p.wide else {"width": 2, "rank": 2}.get(p.key.split()[0], 1)


def _can_fork() -> bool:
    """Whether this process may fork drawing children (not on macOS, where fork is unsafe; not in a daemonic
    process, such as a Dask or multiprocessing worker, which may not have children)."""
    return ("fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin"
            and not multiprocessing.current_process().daemon)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
