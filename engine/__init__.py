"""rankstab: distributed Monte Carlo and Sobol sensitivity sweeps of composite-index rankings.

Python API (mirrors the CLI)::

    ds = engine.load_dataset("gtii-2019")
    engine.score(ds)                          # Dataset score/rank (city, field)
    spec = engine.Spec.from_toml("scenarios/gtii-2019.toml")
    store = engine.run(spec, out="results/gtii-2019.zarr")   # the lazily opened store
    engine.analyze(store)                     # the analysis Dataset (also written to the store)
    engine.report(store, out="results/gtii-2019.html")
"""

from __future__ import annotations

__version__ = "0.1.0"

# The submodules load on first use (PEP 562), so that ``rankstab run`` can start its worker processes
# before it imports the heavy dependencies.
_LAZY = {"list_datasets": "dataset", "load_dataset": "dataset", "UserError": "errors", "Methodology": "methodology",
         "score": "scoring", "Spec": "spec"}


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
    """Run a spec's sweep; see :func:`engine.sweep.run`."""
    from .sweep import run as _run

    return _run(spec, out=out, client=client, **kwargs)


def analyze(store, **kwargs):
    """Analyse a run's store; see :func:`engine.analysis.analyze`."""
    from .analysis import analyze as _analyze

    return _analyze(store, **kwargs)


def report(store, out=None, **kwargs):
    """Write the HTML report of an analysed store; see :func:`engine.report.report`."""
    from .report import report as _report

    return _report(store, out=out, **kwargs)
