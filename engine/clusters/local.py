"""The embedded local cluster: single-threaded worker processes forked from rankstab's preloaded
forkserver (:mod:`.forkserver`), with rankstab's worker environment and memory shared out fairly."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import dask
import distributed

from ..errors import UserError
from . import forkserver

#: Memory kept back for the rankstab process itself (client, analysis) when sizing local workers.
CLIENT_RESERVE = 0.15


def configurable() -> list[Callable]:
    """Whose keyword arguments a local cluster file's ``options:`` may set."""
    return [distributed.LocalCluster.__init__, distributed.Nanny.__init__, distributed.Worker.__init__]


def build(workers: int | None, options: dict, env: Mapping[str, str | None]) -> distributed.LocalCluster:
    """A running LocalCluster of ``workers`` processes (default one per core), one thread each."""
    n = workers or os.cpu_count() or 1
    kwargs: dict[str, Any] = {
        "n_workers": n,
        "threads_per_worker": 1,
        "processes": True,
        # None would still bind the scheduler's HTTP routes to :8787 (a warning when two runs overlap)
        "dashboard_address": ":0",
        "silence_logs": logging.WARNING,
        "memory_limit": memory_limit(n),
    }
    kwargs.update(options)
    # The nanny reads pre-spawn-environ, but an already-set os.environ value wins over the config, and
    # every nanny writes its values into this process's os.environ. So an earlier cluster in this
    # process (dask's own 65536 included) would leak into ours: put our values in place while the
    # nannies spawn, then restore this process's environment.
    chosen = forkserver.chosen_environ(env)
    config = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in chosen.items()}
    config["logging.distributed"] = "warning"
    method = dask.config.get("distributed.worker.multiprocessing-method")
    fork = method == "spawn"  # the default
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
    except RuntimeError as exc:
        main = forkserver.parent_main()
        if fork or method == "fork" or main is None or "failed to start" not in str(exc):
            raise
        # the user chose a start method whose workers re-run this process's script (see forkserver)
        raise UserError(f"the local workers failed to start: with distributed.worker.multiprocessing-method = "
                        f"{method}, every worker re-imports {main.partition(':')[2]}; put its calls under "
                        f"`if __name__ == \"__main__\":`, or leave that setting at its default") from None


def memory_limit(n: int) -> int:
    """Bytes per worker: the machine's (or cgroup's) memory less a reserve for the rankstab process."""
    from distributed.system import MEMORY_LIMIT

    reserve = max(CLIENT_RESERVE * MEMORY_LIMIT, min(2**30, 0.5 * MEMORY_LIMIT))
    return int((MEMORY_LIMIT - reserve) / max(n, 1))
