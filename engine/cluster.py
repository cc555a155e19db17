"""Where a sweep runs: an embedded local cluster, a running scheduler, or a cluster YAML file.

``connect()`` is a context manager that yields a ``distributed.Client`` and always closes what it
opened (the client, and the cluster when it created one), even when the body raises::

    with connect("local", workers=2) as client:                  # embedded LocalCluster
    with connect(scheduler="tcp://10.0.0.5:8786") as client:     # attach to `dask scheduler`
    with connect(scheduler_file="/scratch/me/sched.json") as c:  # dask-mpi / dask scheduler --scheduler-file
    with connect("cluster/slurm.yaml") as client:                # dask-jobqueue SLURMCluster from a file

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

Cluster YAML schema (see ``cluster/*.yaml``)
--------------------------------------------
::

    kind: slurm          # required: local | slurm | pbs
    workers: 8           # worker processes to keep (jobs x options.processes); or instead:
    adapt:               # (slurm/pbs only) scale between these worker counts with the load
      minimum: 0
      maximum: 50
    env:                 # optional: environment for the workers, merged over rankstab's defaults
      MALLOC_TRIM_THRESHOLD_: "134217728"      # null removes a default
    options:             # keyword arguments of LocalCluster / dask_jobqueue.SLURMCluster / PBSCluster
      cores: 1
      memory: 4GB
      walltime: "02:00:00"
      worker_extra_args: ["--lifetime", "110m", "--lifetime-stagger", "4m"]

Unknown keys (top level or in ``options``) are errors with a did-you-mean hint. A ``--lifetime``
(plus its stagger) must end before the walltime; when it is set, the cluster *adapts* to ``workers``
(minimum = maximum) so that jobs ending at their lifetime are replaced by fresh ones.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import shutil
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import dask
import distributed

from . import forkserver
from .errors import UserError, did_you_mean
from .forkserver import DASK_TRIM_DEFAULT, WORKER_ENV  # noqa: F401 - part of this module's interface

KINDS = ("local", "slurm", "pbs")
TOP_KEYS = ("kind", "workers", "adapt", "env", "options")
CONNECT_TIMEOUT = 10.0
WORKER_TIMEOUT = 120.0
#: Memory kept back for the rankstab process itself (client, analysis) when sizing local workers.
CLIENT_RESERVE = 0.15

_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------------------------
# connect
# ----------------------------------------------------------------------------------------------

@contextmanager
def connect(cluster: str = "local", *, scheduler: str | None = None, scheduler_file: str | None = None,
            workers: int | None = None, timeout: float = CONNECT_TIMEOUT,
            worker_timeout: float | None = WORKER_TIMEOUT) -> Iterator[distributed.Client]:
    """Yield a ``distributed.Client`` for ``cluster``, or for a running scheduler.

    ``cluster`` is ``"local"`` (an embedded LocalCluster of ``workers`` single-threaded processes,
    default one per core) or the path of a cluster YAML file. ``scheduler`` (``tcp://HOST:PORT``) or
    ``scheduler_file`` attach to a scheduler someone else started; they are never shut down here.
    ``timeout`` bounds reaching a scheduler (and waiting for its file to appear); ``worker_timeout``
    bounds waiting for the first worker of an attached scheduler (``None``: do not wait). Every problem
    the user can fix is a :class:`UserError`.
    """
    if scheduler and scheduler_file:
        raise UserError("give either --scheduler or --scheduler-file, not both")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"--workers must be a whole number of at least 1, not {workers!r}")

    if scheduler or scheduler_file:
        client = _attach(scheduler, scheduler_file, timeout)
        try:
            if worker_timeout is not None:
                wait_for_workers(client, 1, timeout=worker_timeout)
            yield client
        finally:
            _close(client, None)
        return

    cfg = _default_config() if cluster in (None, "", "local") else load_config(cluster)
    if workers is not None:
        cfg["workers"], cfg["adapt"] = workers, None
    made = build_cluster(cfg)
    client = None
    try:
        _scale(made, cfg)
        client = distributed.Client(made, timeout=timeout)
        yield client
    finally:
        _close(client, made)


class BackgroundCluster:
    """:func:`connect` started in a thread, so that workers spawn and import while this process reads
    the spec and creates the store; :meth:`client` waits for it. :meth:`release` starts shutting it down
    in the background (the caller finishes the store meanwhile); :meth:`close` waits for that."""

    def __init__(self, cluster: str = "local", **kwargs: Any) -> None:
        self._stack = ExitStack()
        self._client: distributed.Client | None = None
        self._error: BaseException | None = None
        self._started = threading.Thread(target=self._start, args=(cluster, kwargs), name="rankstab-cluster")
        self._stopped: threading.Thread | None = None
        self._started.start()

    def _start(self, cluster: str, kwargs: dict) -> None:
        try:
            self._client = self._stack.enter_context(connect(cluster, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by client()
            self._error = exc

    def client(self) -> distributed.Client:
        self._started.join()
        if self._error is not None:
            raise self._error
        assert self._client is not None
        return self._client

    def release(self) -> None:
        if self._stopped is None:
            self._started.join()
            self._stopped = threading.Thread(target=self._stack.close, name="rankstab-cluster-close")
            self._stopped.start()

    def close(self) -> None:
        self.release()
        assert self._stopped is not None
        self._stopped.join()


def _close(client: distributed.Client | None, cluster: Any) -> None:
    """Close quietly: shutdown chatter (closed comms, cancelled heartbeats) is not the user's concern."""
    noisy = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in noisy]
    for lg in noisy:
        lg.setLevel(logging.CRITICAL)
    try:
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
            raise UserError(f"scheduler file {path} {problem} (waited {timeout:g} s); start the scheduler "
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
# cluster YAML files
# ----------------------------------------------------------------------------------------------

def _default_config() -> dict:
    return {"kind": "local", "workers": None, "adapt": None, "env": {}, "options": {}, "source": "local"}


def load_config(path: str | os.PathLike) -> dict:
    """Read and validate a cluster YAML file (schema in the module docstring)."""
    import yaml

    p = Path(path).expanduser()
    if not p.is_file():
        if p.suffix.lower() in (".yaml", ".yml"):
            raise UserError(f'cluster file "{path}" does not exist; check the path '
                            "(examples: cluster/local.yaml, cluster/slurm.yaml, cluster/pbs.yaml)")
        guesses = [g for g in (p.with_name(p.name + ".yaml"), Path("cluster") / f"{p.name}.yaml") if g.is_file()]
        hint = f' (did you mean "{guesses[0]}"?)' if guesses else did_you_mean(str(path), ["local"])
        raise UserError(f'unknown cluster "{path}"{hint}; use "local" or a cluster YAML file (see cluster/)')
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{p}:{where} malformed YAML ({problem}); fix the file (indent with spaces)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: cannot read the cluster file ({exc})") from exc
    if not isinstance(raw, Mapping):
        raise UserError(f"{p}: a cluster file is a YAML mapping with kind:, workers: and options:")

    for key in raw:
        if key not in TOP_KEYS:
            raise UserError(f'{p}: unknown key "{key}"{did_you_mean(key, TOP_KEYS)}; '
                            f"allowed: {', '.join(TOP_KEYS)}")
    kind = raw.get("kind")
    if kind is None:
        raise UserError(f"{p}: missing kind: (one of {', '.join(KINDS)})")
    kind = str(kind).strip().lower()
    if kind not in KINDS:
        raise UserError(f'{p}: unknown kind "{raw["kind"]}"{did_you_mean(kind, KINDS)}; '
                        f"choose one of: {', '.join(KINDS)}")

    workers = raw.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"{p}: workers: must be a whole number of at least 1, not {workers!r}")
    adapt = raw.get("adapt")
    if adapt is not None:
        if kind == "local":
            raise UserError(f"{p}: adapt: is for batch clusters (slurm, pbs); a local cluster uses workers:")
        if workers is not None:
            raise UserError(f"{p}: give workers: or adapt:, not both")
        if not isinstance(adapt, Mapping):
            raise UserError(f"{p}: adapt: must be a mapping like {{minimum: 0, maximum: 50}}")
        for key in adapt:
            if key not in ("minimum", "maximum"):
                raise UserError(f'{p}: unknown key "adapt.{key}"{did_you_mean(key, ("minimum", "maximum"))}; '
                                "allowed: minimum, maximum")
        lo, hi = adapt.get("minimum", 0), adapt.get("maximum")
        if not (isinstance(lo, int) and isinstance(hi, int)) or lo < 0 or hi < max(lo, 1):
            raise UserError(f"{p}: adapt: needs whole numbers 0 <= minimum <= maximum and maximum >= 1")
        adapt = {"minimum": lo, "maximum": hi}

    env = raw.get("env") or {}
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and k for k in env):
        raise UserError(f"{p}: env: must map variable names to values")
    env = {k: (None if v is None else str(v)) for k, v in env.items()}

    options = raw.get("options") or {}
    if not isinstance(options, Mapping):
        raise UserError(f"{p}: options: must be a mapping of {_cluster_name(kind)} keyword arguments")
    options = dict(options)
    for taken, use in (("n_workers", "workers:"), ("asynchronous", None), ("loop", None)):
        if taken in options:
            raise UserError(f'{p}: options.{taken} is set by rankstab' + (f"; use the top-level {use}" if use
                                                                            else "; remove it"))
    cfg = {"kind": kind, "workers": workers, "adapt": adapt, "env": env, "options": options, "source": str(p)}
    _check_options(cfg)
    _check_lifetime(cfg)
    return cfg


def _cluster_name(kind: str) -> str:
    return {"local": "LocalCluster", "slurm": "SLURMCluster", "pbs": "PBSCluster"}[kind]


def _cluster_class(kind: str, source: str = "") -> type:
    if kind == "local":
        return distributed.LocalCluster
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise UserError(f"{source}: kind {kind} needs dask-jobqueue; install it with "
                        "`pip install dask-jobqueue` (or `pip install rankstab[hpc]`)") from exc
    return {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]


def _allowed_options(kind: str, source: str) -> set[str]:
    cls = _cluster_class(kind, source)
    if kind == "local":
        funcs = [cls.__init__, distributed.Nanny.__init__, distributed.Worker.__init__]
    else:
        from dask_jobqueue.core import Job

        funcs = [cls.__init__, cls.job_cls.__init__, Job.__init__]
    names = set()
    for f in funcs:
        names |= {n for n, prm in inspect.signature(f).parameters.items()
                  if prm.kind not in (prm.VAR_KEYWORD, prm.VAR_POSITIONAL) and n != "self"}
    return names - {"n_workers", "loop", "asynchronous", "start", "scheduler", "job_cls", "scheduler_ip",
                    "scheduler_file", "scheduler_port"}


def _check_options(cfg: dict) -> None:
    allowed = _allowed_options(cfg["kind"], cfg["source"])
    for key in cfg["options"]:
        if key not in allowed:
            raise UserError(f'{cfg["source"]}: unknown option "{key}" for {_cluster_name(cfg["kind"])}'
                            f"{did_you_mean(key, allowed)}")
    extra = cfg["options"].get("worker_extra_args")
    if extra is not None and (not isinstance(extra, list) or not all(isinstance(a, str) for a in extra)):
        raise UserError(f'{cfg["source"]}: options.worker_extra_args must be a list of strings, '
                        'e.g. ["--lifetime", "110m"]')
    prologue = cfg["options"].get("job_script_prologue")
    if prologue is not None and (not isinstance(prologue, list) or not all(isinstance(a, str) for a in prologue)):
        raise UserError(f'{cfg["source"]}: options.job_script_prologue must be a list of shell lines')


def _flag(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _walltime_seconds(text: Any) -> float | None:
    """Seconds in a Slurm/PBS walltime ([D-]HH:MM:SS, MM:SS, D-HH[:MM]); None when ambiguous."""
    m = re.fullmatch(r"\s*(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\s*", str(text))
    if not m:
        return None
    days, a, b, c = m.groups()
    if days is None and b is None:
        return None  # a bare number: minutes for Slurm, seconds for PBS
    vals = [int(v) for v in (a, b, c) if v is not None]
    if days is not None:
        h, mnt, s = (vals + [0, 0])[:3]
    elif len(vals) == 3:
        h, mnt, s = vals
    else:
        h, (mnt, s) = 0, vals
    return int(days or 0) * 86400 + h * 3600 + mnt * 60 + s


def _check_lifetime(cfg: dict) -> None:
    opts = cfg["options"]
    args = list(opts.get("worker_extra_args") or [])
    lifetime = _flag(args, "--lifetime")
    if lifetime is None:
        return
    from dask.utils import parse_timedelta

    try:
        life = parse_timedelta(lifetime)
        stagger = parse_timedelta(_flag(args, "--lifetime-stagger") or 0)
    except (ValueError, KeyError) as exc:
        raise UserError(f'{cfg["source"]}: cannot read the worker --lifetime "{lifetime}"; '
                        'write it like "110m" or "1h50m"') from exc
    wall = _walltime_seconds(opts.get("walltime")) if opts.get("walltime") else None
    if wall is not None and life + stagger >= wall:
        raise UserError(f'{cfg["source"]}: worker --lifetime {lifetime} (+ stagger) must end before the '
                        f'walltime {opts["walltime"]}; lower the lifetime to leave a few minutes')


# ----------------------------------------------------------------------------------------------
# building clusters
# ----------------------------------------------------------------------------------------------

def _worker_env(cfg: dict) -> dict[str, str | None]:
    env: dict[str, str | None] = dict(WORKER_ENV)
    env.update(cfg.get("env") or {})
    return env


def build_cluster(cfg: dict):
    """The cluster object a validated config describes, not yet scaled (jobqueue: nothing submitted)."""
    kind, opts = cfg["kind"], dict(cfg["options"])
    if kind == "local":
        return _local_cluster(cfg["workers"], opts, _worker_env(cfg))
    cls = _cluster_class(kind, cfg["source"])
    env = {k: v for k, v in _worker_env(cfg).items() if v is not None}
    prologue = list(opts.get("job_script_prologue") or [])
    exports = [f"export {k}={v}" for k, v in env.items() if not any(f"{k}=" in line for line in prologue)]
    opts["job_script_prologue"] = exports + prologue
    # dask-jobqueue's default dashboard port 8787 is often taken on a shared login node
    opts["scheduler_options"] = {"dashboard_address": ":0", **(opts.get("scheduler_options") or {})}
    try:
        return cls(**opts)
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f'{cfg["source"]}: {_cluster_name(kind)} rejected the options: {first}') from exc


def _local_cluster(workers: int | None, options: dict, env: Mapping[str, str | None]):
    n = workers or os.cpu_count() or 1
    kwargs: dict[str, Any] = {
        "n_workers": n,
        "threads_per_worker": 1,
        "processes": True,
        # None would still bind the scheduler's HTTP routes to :8787 (a warning when two runs overlap)
        "dashboard_address": ":0",
        "silence_logs": logging.WARNING,
        "memory_limit": _local_memory_limit(n),
    }
    kwargs.update(options)
    # The nanny reads pre-spawn-environ, but an already-set os.environ value wins over the config, and
    # every nanny writes its values into this process's os.environ. So an earlier cluster in this
    # process (dask's own 65536 included) would leak into ours: put our values in place while the
    # nannies spawn, then restore this process's environment.
    chosen = forkserver.chosen_environ(env)
    config = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in chosen.items()}
    config["logging.distributed"] = "warning"
    fork = dask.config.get("distributed.worker.multiprocessing-method") == "spawn"  # the default
    if fork:  # fork workers from the preloaded server (started early by `rankstab run`, or now)
        config["distributed.worker.multiprocessing-method"] = "forkserver"
    try:
        with forkserver.environ(chosen), dask.config.set(config):
            if fork:
                distributed.utils.get_mp_context()  # distributed sets its own preload list first
                forkserver.start(chosen)
            return distributed.LocalCluster(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot start the local cluster: {exc}") from exc


def _local_memory_limit(n: int) -> int:
    """Bytes per worker: the machine's (or cgroup's) memory less a reserve for the rankstab process."""
    from distributed.system import MEMORY_LIMIT

    reserve = max(CLIENT_RESERVE * MEMORY_LIMIT, min(2**30, 0.5 * MEMORY_LIMIT))
    return int((MEMORY_LIMIT - reserve) / max(n, 1))


def _scale(cluster, cfg: dict) -> None:
    if cfg["kind"] == "local":
        _plans[cluster] = None
        return
    submit = str(getattr(cluster.job_cls, "submit_command", "") or "").split()
    if submit and shutil.which(submit[0]) is None:
        raise UserError(f'{cfg["source"]}: `{submit[0]}` is not available here, so no {cfg["kind"]} job can be '
                        "submitted; run rankstab on a login node of the cluster, or use the batch template "
                        f"cluster/{'slurm-sweep.sbatch' if cfg['kind'] == 'slurm' else 'pbs-sweep.pbs'}")
    adapt, workers = cfg.get("adapt"), cfg.get("workers")
    lifetime = _flag(list(cfg["options"].get("worker_extra_args") or []), "--lifetime")
    if adapt:
        cluster.adapt(minimum=adapt["minimum"], maximum=adapt["maximum"])
        _plans[cluster] = f"adapting {adapt['minimum']}-{adapt['maximum']} workers"
    else:
        n = workers or 1
        if lifetime:  # replace workers that retire at their lifetime
            cluster.adapt(minimum=n, maximum=n)
        else:
            cluster.scale(n)
        _plans[cluster] = f"target {n} worker{'s' if n != 1 else ''}"


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

