"""Cluster YAML files (see ``cluster/*.yaml``): reading and validating them.

Schema
------
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
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError, did_you_mean, writable
from . import jobqueue, local
from .forkserver import WORKER_ENV

KINDS = ("local", *jobqueue.SCHEDULERS)
TOP_KEYS = ("kind", "workers", "adapt", "env", "options")
#: Keyword arguments rankstab sets itself (or that make no sense for a cluster it owns).
TAKEN = {"n_workers", "loop", "asynchronous", "start", "scheduler", "job_cls", "scheduler_ip",
         "scheduler_file", "scheduler_port"}


def default_config() -> dict:
    """The config of ``--cluster local``: one single-threaded worker per core."""
    return {"kind": "local", "workers": None, "adapt": None, "env": {}, "options": {}, "source": "local"}


def resolve(cluster: str | os.PathLike | None, workers: int | None = None) -> dict:
    """The validated config of ``cluster`` ("local" or a YAML file), ``workers`` (if given) overriding it."""
    cfg = default_config() if cluster in (None, "", "local") else load_config(cluster)
    if workers is not None:
        cfg["workers"], cfg["adapt"] = workers, None
    return cfg


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
    adapt = _adapt(p, kind, workers, raw.get("adapt"))

    env = raw.get("env") or {}
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and k for k in env):
        raise UserError(f"{p}: env: must map variable names to values")
    env = {k: (None if v is None else str(v)) for k, v in env.items()}

    options = raw.get("options") or {}
    if not isinstance(options, Mapping):
        raise UserError(f"{p}: options: must be a mapping of {cluster_name(kind)} keyword arguments")
    options = dict(options)
    for taken, use in (("n_workers", "workers:"), ("asynchronous", None), ("loop", None)):
        if taken in options:
            raise UserError(f'{p}: options.{taken} is set by rankstab' + (f"; use the top-level {use}" if use
                                                                            else "; remove it"))
    cfg = {"kind": kind, "workers": workers, "adapt": adapt, "env": env, "options": options, "source": str(p)}
    _check_options(cfg)
    _check_values(cfg)
    _check_lifetime(cfg)
    return cfg


#: ``options:`` that are sizes, and the whole numbers (at least 1) among them.
SIZES = ("memory_limit", "memory")
COUNTS = ("threads_per_worker", "nthreads", "cores", "processes")


def _check_values(cfg: dict) -> None:
    """The values of the options whose type rankstab knows, so that a typo fails here, naming the file and
    the key, and not when the cluster starts (after the store is made)."""
    from dask.utils import parse_bytes

    src, opts = cfg["source"], cfg["options"]
    for key in SIZES:
        if key not in opts or opts[key] is None:
            continue
        v = opts[key]
        if key == "memory_limit" and (v == "auto" or (isinstance(v, float) and 0 < v <= 1)):
            continue
        try:
            ok = not isinstance(v, bool) and parse_bytes(v) > 0
        except (ValueError, TypeError, KeyError):
            ok = False
        if not ok:
            extra = ', "auto" or a fraction of the memory such as 0.5' if key == "memory_limit" else ""
            raise UserError(f'{src}: options.{key} is {v!r}; write a size such as "4GB" or "4GiB"{extra}')
    for key in COUNTS:
        v = opts.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise UserError(f"{src}: options.{key} must be a whole number of at least 1, not {v!r}")
    folder = opts.get("local_directory")
    if cfg["kind"] == "local" and folder is not None:
        d = Path(str(folder)).expanduser()
        if d.exists() and not d.is_dir():
            raise UserError(f"{src}: options.local_directory {d} is a file, not a folder; choose a folder for the "
                            "workers' scratch files")
        if not d.exists() and not d.parent.is_dir():
            raise UserError(f"{src}: options.local_directory {d}: the folder {d.parent} does not exist; create it "
                            "or choose another folder for the workers' scratch files")
        probe = writable(d if d.is_dir() else d.parent)
        if probe:
            raise UserError(f"{src}: options.local_directory {d} is not usable ({probe}); choose another folder for "
                            "the workers' scratch files")


def _adapt(p: Path, kind: str, workers: Any, adapt: Any) -> dict | None:
    if adapt is None:
        return None
    if kind == "local":
        raise UserError(f"{p}: adapt: is for batch clusters ({', '.join(jobqueue.SCHEDULERS)}); "
                        "a local cluster uses workers:")
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
    return {"minimum": lo, "maximum": hi}


def cluster_name(kind: str) -> str:
    """The class a ``kind:`` makes, as the messages name it."""
    return "LocalCluster" if kind == "local" else jobqueue.SCHEDULERS[kind].cls


def worker_env(cfg: dict) -> dict[str, str | None]:
    """rankstab's worker environment with the file's ``env:`` merged over it (None: removed)."""
    env: dict[str, str | None] = dict(WORKER_ENV)
    env.update(cfg.get("env") or {})
    return env


def lifetime(cfg: dict) -> str | None:
    """The workers' ``--lifetime`` in ``options.worker_extra_args``, if any."""
    return _flag(list(cfg["options"].get("worker_extra_args") or []), "--lifetime")


def _allowed_options(kind: str, source: str) -> set[str]:
    funcs = local.configurable() if kind == "local" else jobqueue.configurable(kind, source)
    names = set()
    for f in funcs:
        names |= {n for n, prm in inspect.signature(f).parameters.items()
                  if prm.kind not in (prm.VAR_KEYWORD, prm.VAR_POSITIONAL) and n != "self"}
    return names - TAKEN


def _check_options(cfg: dict) -> None:
    allowed = _allowed_options(cfg["kind"], cfg["source"])
    for key in cfg["options"]:
        if key not in allowed:
            raise UserError(f'{cfg["source"]}: unknown option "{key}" for {cluster_name(cfg["kind"])}'
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
    life_text = _flag(args, "--lifetime")
    if life_text is None:
        return
    from dask.utils import parse_timedelta

    try:
        life = parse_timedelta(life_text)
        stagger = parse_timedelta(_flag(args, "--lifetime-stagger") or 0)
    except (ValueError, KeyError) as exc:
        raise UserError(f'{cfg["source"]}: cannot read the worker --lifetime "{life_text}"; '
                        'write it like "110m" or "1h50m"') from exc
    wall = _walltime_seconds(opts.get("walltime")) if opts.get("walltime") else None
    if wall is not None and life + stagger >= wall:
        raise UserError(f'{cfg["source"]}: worker --lifetime {life_text} (+ stagger) must end before the '
                        f'walltime {opts["walltime"]}; lower the lifetime to leave a few minutes')
