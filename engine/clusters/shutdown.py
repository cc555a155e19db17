"""Stop a Dask cluster started by hand or by a batch template, quietly: workers first, then the scheduler.

    python -m engine.clusters.shutdown SCHEDULER_FILE

``Client.shutdown()`` alone closes the scheduler, which tells every worker to close itself. A worker under
a nanny (``dask worker``'s default) that closes itself races with the nanny's stop queue in its own
process and may log "Worker process died unexpectedly" with a traceback; a worker whose scheduler is gone
first may log failed heartbeats. Here each nanny is asked to close its worker (the path a SIGTERM to
``dask worker`` takes), nanny-less workers (dask-mpi's ``distributed.Worker``) close themselves, and the
scheduler is closed once no worker is left and no nanny or worker address still answers (a worker
leaves the scheduler before its process ends). Every ``dask worker``/dask-mpi process then exits 0, so
``srun``/``mpirun`` end without "Killed" lines. Standard library and distributed only.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from contextlib import suppress

STOP_REASON = "rankstab-cluster-shutdown"


async def _close_worker(address: str, timeout: float) -> None:
    """Ask a nanny (or a nanny-less worker) to close; it drops the connection as it goes. A nanny kills its
    worker process if that has not ended after 0.8 ``timeout`` (Dask's default, 5 s, is short on a busy node)."""
    from distributed.comm.core import CommClosedError
    from distributed.core import rpc

    with suppress(CommClosedError, OSError):
        async with rpc(address, timeout=20) as remote:
            await remote.terminate(reason=STOP_REASON, timeout=timeout)


HEARTBEAT_GRACE = 1.0  # s for a heartbeat already under way to finish once the heartbeats are stopped
NOISY = ("distributed", "tornado", "asyncio")  #: the loggers of shutdown chatter


def quiet_worker(dask_worker) -> None:
    """Run on each worker just before it is closed: no more heartbeats, and no shutdown chatter from its
    process. ``Worker.close`` stops the periodic heartbeat but then closes its connections while a
    heartbeat sent just before may still wait on one; that heartbeat then logs "Failed to communicate with
    scheduler during heartbeat" with a traceback (seen on a loaded node). The scheduler misses nothing: it
    removes the worker when it closes. (Also used by :func:`engine.clusters.core` for the clusters
    rankstab starts.)"""
    heartbeat = dask_worker.periodic_callbacks.get("heartbeat")
    if heartbeat is not None:
        heartbeat.stop()
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.CRITICAL)


async def _stop_heartbeat(dask_worker) -> None:
    """:func:`quiet_worker`, then time for a heartbeat already under way to finish."""
    quiet_worker(dask_worker)
    await asyncio.sleep(HEARTBEAT_GRACE)


async def _listening(address: str) -> bool:
    """Whether a process still accepts connections at ``address`` (a worker unregisters from the scheduler
    before its process, whose heartbeat could still fire, has ended)."""
    from distributed.comm import connect

    try:
        comm = await connect(address, timeout=1)
    except (TimeoutError, OSError):
        return False
    await comm.close()
    return True


async def shutdown(scheduler_file: str, wait: float = 60.0) -> int:
    """Close the workers of the scheduler in ``scheduler_file``, wait up to ``wait`` s for them to leave,
    then close the scheduler. Returns how many workers were still there when the scheduler was closed."""
    from distributed import Client

    async with Client(scheduler_file=scheduler_file, asynchronous=True, timeout=20) as client:
        workers = (await client.scheduler.identity(n_workers=-1))["workers"]
        addresses = [w.get("nanny") or addr for addr, w in workers.items()]
        with suppress(Exception):  # a worker that cannot run it still closes, perhaps with that log line
            await client.run(_stop_heartbeat, wait=True)
        await asyncio.gather(*(_close_worker(a, wait / 2) for a in addresses))
        deadline = time.monotonic() + wait
        while workers and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            workers = (await client.scheduler.identity(n_workers=-1))["workers"]
        while addresses and time.monotonic() < deadline:  # then until their processes stop listening
            addresses = [a for a in addresses if await _listening(a)]
            if addresses:
                await asyncio.sleep(0.2)
        await client.shutdown()
    return len(workers)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m engine.clusters.shutdown SCHEDULER_FILE", file=sys.stderr)
        return 2
    left = asyncio.run(shutdown(args[0]))
    if left:
        print(f"{left} Dask worker(s) did not close within 60 s; the scheduler was closed anyway", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
