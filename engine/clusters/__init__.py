"""Where a sweep runs: an embedded local cluster, a running scheduler, or a cluster YAML file.

=================  ===============================================================================
``core``           :func:`connect` (local / attach to an address or scheduler file / from a file),
                   waiting for workers, :func:`describe`, closing quietly
``config``         cluster YAML files: :func:`load_config` and its validation (schema there)
``local``          the LocalCluster, its workers forked from the preloaded forkserver
``jobqueue``       SLURM and PBS through dask-jobqueue; another batch system is one more row there
``background``     :class:`BackgroundCluster`: ``connect`` in a thread while the store is created
``forkserver``     the preloaded server local workers fork from (standard library only)
``shutdown``       ``python -m engine.clusters.shutdown FILE``: close a cluster's workers, then its scheduler
(what that server imports, warmed up, is :mod:`engine.sweep.preload`: named, never imported, here)
=================  ===============================================================================

Names are imported on first use, so that ``engine.clusters.forkserver`` can start before Dask loads.

Worker memory allocator
-----------------------
Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (config key
``distributed.nanny.pre-spawn-environ``). Setting that variable at all, to any value, turns off
glibc's dynamic mmap threshold, so every NumPy array above 128 KiB is a fresh ``mmap``: its pages are
faulted in on first touch and handed back to the kernel on free. For rankstab's block-wise kernels
that is ~150,000 page faults and ~0.55 s of system time per 1.6 s task. rankstab therefore starts
workers with ``MALLOC_TRIM_THRESHOLD_=128 MiB`` *and* ``MALLOC_MMAP_THRESHOLD_=32 MiB`` (the glibc
maximum): arrays up to 32 MiB are recycled from the heap, larger ones still go straight back to the
OS, and at most 128 MiB of free heap top is kept per worker (see :data:`WORKER_ENV`). Local clusters
get it through the nanny config; batch jobs (jobqueue, the templates in ``cluster/``) export it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .background import BackgroundCluster
    from .config import load_config
    from .core import build_cluster, connect, describe, preflight, wait_for_workers
    from .forkserver import DASK_TRIM_DEFAULT, WORKER_ENV

_WHERE = {
    "BackgroundCluster": "background",
    "load_config": "config",
    "build_cluster": "core", "connect": "core", "describe": "core", "preflight": "core",
    "wait_for_workers": "core",
    "DASK_TRIM_DEFAULT": "forkserver", "WORKER_ENV": "forkserver",
}
__all__ = ["BackgroundCluster", "DASK_TRIM_DEFAULT", "WORKER_ENV", "build_cluster", "connect", "describe",
           "load_config", "preflight", "wait_for_workers"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
