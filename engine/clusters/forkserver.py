"""Local worker processes forked from a server that imported the engine once.

A LocalCluster's nannies normally *spawn* each worker: a fresh interpreter that imports NumPy, numba,
xarray, zarr, Dask and the engine (about a second of CPU each). rankstab instead points them at
multiprocessing's forkserver, preloaded with the engine, so each worker is a cheap fork. ``rankstab run``
starts that server first thing (:func:`start`), before it imports anything heavy itself, so the server's
imports run on the other core while the command reads the spec and creates the store.

The workers never re-run the parent's ``__main__``: multiprocessing would make each one re-import the
script that started it (as ``__mp_main__``), so a script calling ``engine.run`` without an
``if __name__ == "__main__":`` guard would start a sweep in every worker ("Nanny failed to start"). The
server takes the parent's ``__main__`` identity instead (:func:`adopt_parent_main`), which multiprocessing
reads as "already prepared". Tasks never need the parent's ``__main__``: Dask pickles its functions by value.

This module is deliberately light (standard library only): importing it must not delay that start.
The server keeps the environment it was started with (:data:`WORKER_ENV`, thread counts and malloc
settings), and its children inherit it.
"""

from __future__ import annotations

import importlib.machinery
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.spawn
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

#: Environment given to every worker process (see :mod:`engine.clusters` for the measurement).
WORKER_ENV: dict[str, str] = {
    "MALLOC_TRIM_THRESHOLD_": str(128 * 2**20),
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    # single-threaded workers: one BLAS thread each (dask's defaults, repeated for forked workers)
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
}
#: The value distributed's nanny would set; an inherited copy of it is treated as not chosen by the user.
DASK_TRIM_DEFAULT = "65536"
#: What the server imports before it forks any worker (:mod:`engine.sweep.preload` also warms the sweep up).
PRELOAD = ["distributed", "numpy", "engine.sweep.preload"]
#: Tells the server what its parent's ``__main__`` is ("path:FILE" or "name:MODULE"); see :func:`adopt_parent_main`.
PARENT_MAIN_ENV = "RANKSTAB_PARENT_MAIN"


def chosen_environ(env: Mapping[str, str | None]) -> dict[str, str | None]:
    """``env`` with the values this process's user already set winning (except dask's own trim default,
    which an earlier cluster in this process may have left behind)."""
    chosen = {}
    for key, value in env.items():
        current = os.environ.get(key)
        user_set = current is not None and not (key == "MALLOC_TRIM_THRESHOLD_" and current == DASK_TRIM_DEFAULT)
        chosen[key] = current if user_set else value
    return chosen


@contextmanager
def environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (None: remove) environment variables of this process for the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    _set(values)
    try:
        yield
    finally:
        _set(saved)


def _set(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def start(env: Mapping[str, str | None] = WORKER_ENV) -> None:
    """Start the preloaded forkserver now, with ``env`` (user-set values winning) for it and its children.
    Does nothing if it is already running (it keeps the environment it started with)."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    with environ({**chosen_environ(env), PARENT_MAIN_ENV: parent_main()}):
        multiprocessing.forkserver.ensure_running()


def parent_main() -> str | None:
    """What multiprocessing would make every child re-import as its ``__main__`` ("path:FILE" or
    "name:MODULE"), or None (an interactive session or a notebook: nothing)."""
    data = multiprocessing.spawn.get_preparation_data("rankstab")
    if "init_main_from_name" in data:
        return f"name:{data['init_main_from_name']}"
    if "init_main_from_path" in data:
        return f"path:{data['init_main_from_path']}"
    return None


def adopt_parent_main() -> None:
    """In the server (called by its preload): make its ``__main__`` look like the parent's, so that the
    workers forked from it find ``__main__`` already prepared and do not re-run the parent's script."""
    kind, _, target = os.environ.pop(PARENT_MAIN_ENV, "").partition(":")
    main = sys.modules["__main__"]
    if kind == "path":
        main.__file__ = target
    elif kind == "name":
        main.__spec__ = importlib.machinery.ModuleSpec(target, None)
