"""Batch clusters through dask-jobqueue: one row of :data:`SCHEDULERS` per batch system.

A SLURM or PBS cluster is dask-jobqueue's ``SLURMCluster`` / ``PBSCluster``: a scheduler in this process
that submits one batch job per worker group. rankstab adds its worker environment to each job script,
and a dashboard on a free port. Adding another batch system that dask-jobqueue supports (LSF, SGE,
HTCondor, OAR) is one more row of :data:`SCHEDULERS`.

dask-jobqueue installs a SIGINT handler when it is first imported, which only the main thread may do
(:func:`load`): rankstab imports it in the main thread, before the background cluster thread starts, and
keeps Python's own handler so that Ctrl-C still stops a run as "interrupted".
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import UserError


@dataclass(frozen=True)
class Scheduler:
    """A batch system: its dask-jobqueue class and rankstab's batch template for it in ``cluster/``."""

    cls: str
    template: str


#: ``kind:`` of a cluster YAML file -> batch system.
SCHEDULERS: dict[str, Scheduler] = {
    "slurm": Scheduler("SLURMCluster", "slurm-sweep.sbatch"),
    "pbs": Scheduler("PBSCluster", "pbs-sweep.pbs"),
}


def load(source: str = "", kind: str = "slurm") -> ModuleType:
    """Import dask-jobqueue (a UserError naming ``source`` when it is not installed).

    Its first import sets a SIGINT handler (``sys.exit``), which fails outside the main thread; in the
    main thread, Python's previous handler is put back so that Ctrl-C stays a KeyboardInterrupt.
    """
    if "dask_jobqueue" in sys.modules:
        return sys.modules["dask_jobqueue"]
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("dask-jobqueue must first be imported in the main thread (it sets a signal "
                           "handler); call engine.clusters.jobqueue.load() before starting threads")
    previous = signal.getsignal(signal.SIGINT)
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise UserError(f"{source}: kind {kind} needs dask-jobqueue; install it with "
                        "`pip install dask-jobqueue` (or `pip install rankstab[hpc]`)") from exc
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return dask_jobqueue


def cluster_class(kind: str, source: str = "") -> type:
    return getattr(load(source, kind), SCHEDULERS[kind].cls)


def configurable(kind: str, source: str) -> list[Callable]:
    """Whose keyword arguments a batch cluster file's ``options:`` may set."""
    cls = cluster_class(kind, source)
    from dask_jobqueue.core import Job

    return [cls.__init__, cls.job_cls.__init__, Job.__init__]


def build(cfg: dict, env: dict[str, str | None]):
    """The jobqueue cluster of a validated config, its job script exporting ``env``; nothing submitted."""
    kind, opts = cfg["kind"], dict(cfg["options"])
    cls = cluster_class(kind, cfg["source"])
    exported = {k: v for k, v in env.items() if v is not None}
    prologue = list(opts.get("job_script_prologue") or [])
    exports = [f"export {k}={v}" for k, v in exported.items() if not any(f"{k}=" in line for line in prologue)]
    opts["job_script_prologue"] = exports + prologue
    # dask-jobqueue's default dashboard port 8787 is often taken on a shared login node
    opts["scheduler_options"] = {"dashboard_address": ":0", **(opts.get("scheduler_options") or {})}
    try:
        return cls(**opts)
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f'{cfg["source"]}: {SCHEDULERS[kind].cls} rejected the options: {first}') from exc


def scale(cluster: Any, cfg: dict, lifetime: str | None) -> str:
    """Submit the jobs of ``cfg`` (workers: or adapt:); returns the plan, e.g. "target 8 workers"."""
    submit = str(getattr(cluster.job_cls, "submit_command", "") or "").split()
    if submit and shutil.which(submit[0]) is None:
        raise UserError(f'{cfg["source"]}: `{submit[0]}` is not available here, so no {cfg["kind"]} job can be '
                        "submitted; run rankstab on a login node of the cluster, or use the batch template "
                        f"cluster/{SCHEDULERS[cfg['kind']].template}")
    adapt, workers = cfg.get("adapt"), cfg.get("workers")
    if adapt:
        cluster.adapt(minimum=adapt["minimum"], maximum=adapt["maximum"])
        return f"adapting {adapt['minimum']}-{adapt['maximum']} workers"
    n = workers or 1
    if lifetime:  # replace workers that retire at their lifetime
        cluster.adapt(minimum=n, maximum=n)
    else:
        cluster.scale(n)
    return f"target {n} worker{'s' if n != 1 else ''}"
