"""Where a sweep runs: :func:`connect` to an embedded local cluster, a running scheduler, or the cluster
a YAML file describes; waiting for workers; :func:`describe`; closing quietly.

``connect()`` is a context manager that yields a ``distributed.Client`` and always closes what it
opened (the client, and the cluster when it created one), even when the body raises::

    with connect("local", workers=2) as client:                  # embedded LocalCluster
    with connect(scheduler="tcp://10.0.0.5:8786") as client:     # attach to `dask scheduler`
    with connect(scheduler_file="/scratch/me/sched.json") as c:  # dask-mpi / dask scheduler --scheduler-file
    with connect("cluster/slurm.yaml") as client:                # dask-jobqueue SLURMCluster from a file
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import distributed

from ..errors import UserError
from . import jobqueue, local
from .config import lifetime, resolve, worker_env
from .shutdown import NOISY, quiet_worker

CONNECT_TIMEOUT = 10.0
WORKER_TIMEOUT = 120.0

_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------------------------
# connect
# ----------------------------------------------------------------------------------------------

@contextmanager
def connect(cluster: str = "local", *, scheduler: str | None = None, scheduler_file: str | None = None,
            workers: int | None = None, timeout: float = CONNECT_TIMEOUT,
            worker_timeout: float | None = WORKER_TIMEOUT, submit: bool = True) -> Iterator[distributed.Client]:
    """Yield a ``distributed.Client`` for ``cluster``, or for a running scheduler.

    ``cluster`` is ``"local"`` (an embedded LocalCluster of ``workers`` single-threaded processes,
    default one per core) or the path of a cluster YAML file. ``scheduler`` (``tcp://HOST:PORT``) or
    ``scheduler_file`` attach to a scheduler someone else started; they are never shut down here.
    ``timeout`` bounds reaching a scheduler (and waiting for its file to appear); ``worker_timeout``
    bounds waiting for the first worker of an attached scheduler (``None``: do not wait); ``submit=False``
    builds a batch cluster without submitting any job. Every problem the user can fix is a
    :class:`UserError`.
    """
    check_arguments(scheduler, scheduler_file, workers)
    if scheduler or scheduler_file:
        with attached(scheduler, scheduler_file, timeout=timeout, worker_timeout=worker_timeout) as client:
            yield client
        return
    with started(resolve(cluster, workers), timeout=timeout, submit=submit) as client:
        yield client


def check_arguments(scheduler: str | None, scheduler_file: str | None, workers: int | None) -> None:
    """The checks of :func:`connect`'s arguments that need no cluster."""
    if scheduler and scheduler_file:
        raise UserError("give either --scheduler or --scheduler-file, not both")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"--workers must be a whole number of at least 1, not {workers!r}")


def preflight(cluster: str = "local", *, scheduler: str | None = None, scheduler_file: str | None = None,
              workers: int | None = None, timeout: float = CONNECT_TIMEOUT) -> None:
    """Everything about where a run will go that can be checked before anything is written: the
    arguments, the cluster file (read and validated), and a scheduler's address (reached once, when it
    is given or its scheduler file already exists: a file still to be written by a starting scheduler is
    waited for later)."""
    check_arguments(scheduler, scheduler_file, workers)
    if scheduler:
        reach(_check_address(scheduler), timeout, "start it with `dask scheduler` or check the address and the "
                                                  "firewall")
    elif scheduler_file:
        path = Path(scheduler_file).expanduser()
        if not path.parent.is_dir():
            raise UserError(f"scheduler file {path}: the folder {path.parent} does not exist; check the path")
        if path.is_file():
            reach(_read_scheduler_file(path, 0), timeout, f"the file {path} may be stale, left by an earlier job: "
                                                          "start the scheduler again or check the path")
    else:
        resolve(cluster, workers)


def reach(address: str, timeout: float, hint: str) -> None:
    """Open (and close) one TCP connection to a scheduler: refused or unroutable fails here, at once."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, loc = parse_address(address)
    if scheme not in ("tcp", "tls"):
        return
    host, port = parse_host_port(loc)
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise UserError(f"cannot reach scheduler {address} ({why.lower()}); {hint}") from None


@contextmanager
def attached(scheduler: str | None, scheduler_file: str | None, *, timeout: float = CONNECT_TIMEOUT,
             worker_timeout: float | None = WORKER_TIMEOUT) -> Iterator[distributed.Client]:
    """A client of a scheduler someone else started (never shut down here)."""
    client = _attach(scheduler, scheduler_file, timeout)
    try:
        if worker_timeout is not None:
            wait_for_workers(client, 1, timeout=worker_timeout)
        yield client
    finally:
        _close(client, None)


@contextmanager
def started(cfg: dict, *, timeout: float = CONNECT_TIMEOUT, submit: bool = True) -> Iterator[distributed.Client]:
    """A client of the cluster a validated config (:func:`~.config.resolve`) describes, started here and
    closed on the way out. ``submit=False``: a batch cluster submits no job (its ``job_script()`` can be
    read from ``client.cluster``)."""
    made = build_cluster(cfg)
    client = None
    try:
        if submit:
            _scale(made, cfg)
        client = distributed.Client(made, timeout=timeout)
        yield client
    finally:
        _close(client, made)


def _run_briefly(client: distributed.Client, function: Callable, timeout: float = 5.0) -> None:
    """``client.run(function)`` on every worker, given at most ``timeout`` s (a busy worker is not waited
    for: this only spares log lines), errors ignored."""

    def run() -> None:
        with suppress(Exception):
            client.run(function)

    thread = threading.Thread(target=run, name="rankstab-quiet-workers", daemon=True)
    thread.start()
    thread.join(timeout)


def _close(client: distributed.Client | None, cluster: Any) -> None:
    """Close quietly: shutdown chatter (closed comms, cancelled heartbeats) is not the user's concern, in
    this process nor (for a cluster started here) in the workers'."""
    noisy = [logging.getLogger(n) for n in NOISY]
    levels = [lg.level for lg in noisy]
    for lg in noisy:
        lg.setLevel(logging.CRITICAL)
    try:
        if client is not None and cluster is not None:
            _run_briefly(client, quiet_worker)
        if client is not None:
            with suppress(Exception):
                client.close(timeout=10)
        if cluster is not None:
            with suppress(Exception):
                cluster.close(timeout=20)
    finally:
        for lg, level in zip(noisy, levels, strict=True):
            lg.setLevel(level)


# ----------------------------------------------------------------------------------------------
# attaching to a running scheduler
# ----------------------------------------------------------------------------------------------

def _attach(scheduler: str | None, scheduler_file: str | None, timeout: float) -> distributed.Client:
    if scheduler_file:
        path = Path(scheduler_file).expanduser()
        address = _read_scheduler_file(path, timeout)
        where = f"scheduler {address} (from {path})"
        hint = (f"the file may be stale, left by an earlier job: start the scheduler again "
                f"(`dask scheduler --scheduler-file {path}` or dask-mpi) or check the network interface")
    else:
        address = _check_address(scheduler)
        where = f"scheduler {address}"
        hint = "start it with `dask scheduler` or check the address and the firewall"
    try:
        if scheduler_file:
            return distributed.Client(scheduler_file=str(path), timeout=timeout)
        return distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise UserError(f"cannot reach {where} within {timeout:g} s; {hint}") from exc


def _check_address(address: str) -> str:
    """Normalise ``HOST:PORT`` to ``tcp://HOST:PORT``; reject what distributed cannot dial."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    text = str(address).strip()
    if "://" not in text:
        text = "tcp://" + text
    try:
        scheme, loc = parse_address(text)
        if scheme not in backends:
            raise ValueError(scheme)
        if scheme != "inproc":
            parse_host_port(loc)
    except (ValueError, TypeError) as exc:
        raise UserError(f'"{address}" is not a scheduler address; expected tcp://HOST:PORT '
                        "(the address `dask scheduler` prints, default port 8786)") from exc
    return text


def _read_scheduler_file(path: Path, timeout: float) -> str:
    """The address in a scheduler file, waiting up to ``timeout`` s for it to appear (a scheduler
    started in the same batch job may still be writing it)."""
    if not path.parent.is_dir():
        raise UserError(f"scheduler file {path}: the folder {path.parent} does not exist; check the path")
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = json.loads(path.read_text())
            return _check_address(info["address"])
        except FileNotFoundError:
            problem = "does not exist"
        except (ValueError, KeyError, TypeError):
            problem = "is not a Dask scheduler file (no JSON with an address)"
        if time.monotonic() >= deadline:
            waited = f" (waited {timeout:g} s)" if timeout else ""
            raise UserError(f"scheduler file {path} {problem}{waited}; start the scheduler "
                            f"with `dask scheduler --scheduler-file {path}` or "
                            f"`mpirun -np N dask-mpi --scheduler-file {path}`, or check the path")
        time.sleep(0.1)


def wait_for_workers(client: distributed.Client, n: int = 1, timeout: float = WORKER_TIMEOUT) -> None:
    """Block until the scheduler has ``n`` workers; a clear UserError after ``timeout`` seconds."""
    try:
        client.wait_for_workers(n, timeout=timeout)
    except (TimeoutError, OSError) as exc:
        have = len(client.scheduler_info(n_workers=-1).get("workers", {})) if client.status == "running" else 0
        address = client.scheduler.address if client.scheduler is not None else "?"
        raise UserError(f"scheduler {address} has {have} of {n} worker{'s' if n != 1 else ''} after "
                        f"{timeout:g} s; start workers with `dask worker {address} --nthreads 1` "
                        "(or check the workers' job and log)") from exc


# ----------------------------------------------------------------------------------------------
# building clusters
# ----------------------------------------------------------------------------------------------

def build_cluster(cfg: dict):
    """The cluster object a validated config describes, not yet scaled (jobqueue: nothing submitted)."""
    if cfg["kind"] == "local":
        return local.build(cfg["workers"], dict(cfg["options"]), worker_env(cfg))
    return jobqueue.build(cfg, worker_env(cfg))


def _scale(cluster, cfg: dict) -> None:
    """Start the workers of a batch cluster (a local one has its workers already)."""
    _plans[cluster] = None if cfg["kind"] == "local" else jobqueue.scale(cluster, cfg, lifetime(cfg))


# ----------------------------------------------------------------------------------------------
# describe
# ----------------------------------------------------------------------------------------------

def describe(client: distributed.Client) -> str:
    """One line naming where the work runs, e.g. ``LocalCluster: 2 workers x 1 thread, 9.4 GiB each``."""
    info = client.scheduler_info(n_workers=-1)
    ws = list(info.get("workers", {}).values())
    threads = sorted({w.get("nthreads", 0) for w in ws})
    if len(threads) == 1:
        shape = f"{len(ws)} worker{'s' if len(ws) != 1 else ''} x {threads[0]} thread{'s' if threads[0] != 1 else ''}"
    else:
        shape = f"{len(ws)} workers, {sum(w.get('nthreads', 0) for w in ws)} threads"
    cluster = getattr(client, "cluster", None)
    address = info.get("address") or getattr(client.scheduler, "address", "?")
    if cluster is None:
        return f"scheduler {address}: {shape}"
    name = type(cluster).__name__
    if isinstance(cluster, distributed.LocalCluster):
        mems = {w.get("memory_limit") for w in ws}
        mem = f", {next(iter(mems)) / 2**30:.1f} GiB each" if len(mems) == 1 and next(iter(mems)) else ""
        return f"{name}: {shape}{mem}"
    plan = _plans.get(cluster)
    return f"{name} (scheduler {address}): {shape} running" + (f", {plan}" if plan else "")

