"""rankstab: distributed Monte Carlo and Sobol sensitivity sweeps of composite-index rankings.

Python API (mirrors the CLI; works in a script without an ``if __name__ == "__main__":`` guard and in
a notebook)::

    ds = engine.load_dataset("gtii-2019")
    engine.score(ds)                          # Dataset score/rank (city, field)
    store = engine.run("cn36-2019", out="results/cn36.zarr")  # a shipped spec's name, a TOML path or a Spec
    engine.analyze(store)                     # the analysis Dataset (also written to the store)
    engine.report(store, out="results/cn36.html")

:func:`run` starts an embedded local Dask cluster unless given ``client=`` (a ``distributed.Client`` of
your own), and shows its progress (``progress=``) as a notebook display in Jupyter, a bar on a
terminal and timestamped lines in logs.
"""

from __future__ import annotations

__version__ = "0.1.0"

# The submodules load on first use (PEP 562), so that ``rankstab run`` can start its worker processes
# before it imports the heavy dependencies.
_LAZY = {"list_datasets": "data", "load_dataset": "data", "UserError": "errors", "Methodology": "methods",
         "score": "kernel.scoring", "Spec": "spec"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Methodology", "Spec", "UserError", "analyze", "list_datasets", "load_dataset", "report", "run",
           "score", "__version__"]


def run(spec, out=None, client=None, **kwargs):
    """Run a spec's sweep into a zarr store, analyse it, and return the store opened lazily with xarray.

    ``spec``: a :class:`Spec`, a TOML path, or the name of a shipped spec (``"gtii-2019"``,
    ``"cn36-2019"``, ``"asem-jrc"``...). ``out``: the store path (default ``results/<spec name>.zarr``).

    ``client``: a ``distributed.Client`` to run on (yours: it is left open); default: an embedded
    ``LocalCluster`` of ``workers`` single-threaded processes (default: one per core), closed afterwards.
    ``cluster="FILE.yaml"``, ``scheduler="tcp://HOST:PORT"`` or ``scheduler_file=`` choose another
    cluster, as the CLI's options do; ``synchronous=True`` computes in this process.

    ``progress``: ``"auto"`` (default: a display updating in place in Jupyter, a bar on a terminal,
    a timestamped line every few seconds otherwise), ``"notebook"``, ``"bar"``, ``"quiet"`` or ``None``.

    ``resume=True`` finishes an interrupted run in the same store; ``overwrite=True`` replaces an existing
    store. ``analyse=False`` skips the analysis. See :func:`engine.pipeline.run` and
    :func:`engine.sweep.sweep`.
    """
    _leave_if_reimported()
    from .pipeline import run as _run

    return _run(spec, out=out, client=client, **kwargs)


def _leave_if_reimported() -> None:
    """In a worker process that multiprocessing prepares by re-running its parent's script (a start
    method the user chose; rankstab's own never re-runs it, see :mod:`engine.clusters.forkserver`), a
    script without a ``__main__`` guard would start a sweep of its own: the worker leaves quietly and the
    parent says what to do (:func:`engine.clusters.local.build`)."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(2)


def analyze(store, **kwargs):
    """Analyse a run's store; see :func:`engine.analysis.analyze`."""
    from .analysis import analyze as _analyze

    return _analyze(store, **kwargs)


def report(store, out=None, **kwargs):
    """Write the HTML report of an analysed store; see :func:`engine.reporting.report`."""
    from .reporting import report as _report

    return _report(store, out=out, **kwargs)
