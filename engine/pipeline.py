"""``run`` = sweep -> analyse -> report, composed above the three so that none imports its consumer; and the
``rankstab run`` command."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import xarray as xr

from .analysis import open_analysis, summary_table, table_variables, write_summary
from .clusters import BackgroundCluster, preflight
from .spec import Spec
from .store import check_lease, open_store, read_attrs
from .sweep import default_out, sweep
from .sweep.core import check_out
from .sweep.stop import worker_timeout
from .validate import check_run_options, check_target, load


def run(spec: Spec | str | Path, out: str | Path | None = None, client=None, *, analyse: bool = True,
        progress: str | None = "auto", **kwargs) -> xr.Dataset:
    """Run a spec's sweep into a zarr store and return it opened lazily; with ``analyse`` (the default) the
    analysis is written to its group ``analysis`` from the summaries the tasks accumulated. ``progress``
    defaults to "auto" (a notebook display in Jupyter, a bar on a terminal, plain lines in logs). Other
    keywords: see :func:`engine.sweep.sweep`."""
    path = sweep(spec, out, client, analyse=write_summary if analyse else None, progress=progress, **kwargs)
    return open_store(path)


def _preload() -> threading.Thread:
    """Import what the report imports lazily (matplotlib, Jinja2, and dask.array, which xarray imports on
    first indexing) in a background thread while the sweep runs: the client mostly waits then, and these
    imports take 1.5-2 s after the sweep otherwise. Joined before the report (which forks its drawing
    processes)."""

    def imports() -> None:
        with suppress(Exception):  # a failed import is raised, with its message, where it is needed
            import dask.array  # noqa: F401

            from . import reporting  # noqa: F401

    thread = threading.Thread(target=imports, name="rankstab-preload", daemon=True)
    thread.start()
    return thread


def run_cli(args) -> int:
    t0 = time.perf_counter()
    # everything that can be checked is checked before a cluster starts or anything is written
    spec = load(args.spec)
    for note in spec.notes:
        print(note, file=sys.stderr)
    out = Path(args.out) if args.out else default_out(spec)
    check_run_options(spec, until_ci=args.until_ci, max_doublings=args.max_doublings, workers=args.workers)
    worker_timeout(args.worker_timeout)
    check_target(spec, out, "--out" if args.out else None, new=args.overwrite or not out.exists())
    check_lease(out)  # another live run holds the store: say so before any worker starts
    if out.exists():
        check_out(out, spec, args.resume, args.overwrite)
    where = dict(cluster=args.cluster, scheduler=args.scheduler, scheduler_file=args.scheduler_file,
                 workers=args.workers)
    if not args.synchronous:
        preflight(**where)  # the cluster file, the scheduler's address (reached once), --workers
    bg = None if args.synchronous else BackgroundCluster(**where)  # workers start while the store is created
    try:
        return _run_cli(args, spec, bg, where, t0)
    finally:
        if bg is not None:
            bg.close()


def _run_cli(args, spec: Spec, bg: BackgroundCluster | None, where: dict, t0: float) -> int:
    mode = "quiet" if args.quiet or not sys.stderr.isatty() else "bar"
    kw = dict(synchronous=args.synchronous, progress=mode)
    analyse = not args.no_analyze or args.until_ci is not None
    preload = _preload() if analyse and not args.no_report else None
    path = sweep(spec, args.out, bg, resume=args.resume, overwrite=args.overwrite,
                 analyse=write_summary if analyse else None, worker_timeout=args.worker_timeout, **kw)
    el = time.perf_counter() - t0
    n = int(read_attrs(path)["n_scenarios"])
    what = "swept and analysed" if analyse else "swept"
    print(f"wrote {path} ({n:,} scenarios {what} in {el:.1f} s, {n / el:,.0f} scenarios/s)")
    if not analyse:
        return 0
    result = table_variables(open_analysis(path))  # not the whole group: at 2000 cities it is hundreds of MB
    if args.until_ci is not None:
        for _ in range(args.max_doublings):
            widest = result.attrs["max_ST_conf"]
            if widest <= args.until_ci:
                break
            print(f"widest ST interval +-{widest:.3f} > {args.until_ci}: doubling N", file=sys.stderr)
            sweep(spec, path, grow=True, analyse=write_summary, worker_timeout=args.worker_timeout, **kw, **where)  # on a fresh cluster: the first one was released
            result = table_variables(open_analysis(path))
        widest = result.attrs["max_ST_conf"]
        state = "reached" if widest <= args.until_ci else f"not reached after {args.max_doublings} doublings"
        print(f"convergence: widest ST interval +-{widest:.3f}, target {args.until_ci} {state} "
              f"(N = {int(read_attrs(path)['design_n']):,})")
    print(summary_table(result))
    if not args.no_report:
        t1 = time.perf_counter()
        assert preload is not None
        preload.join()
        from .reporting import report  # matplotlib and Jinja2: imported only when a report is written

        html = report(path)
        print(f"report: {html} ({time.perf_counter() - t1:.1f} s)")
    return 0
