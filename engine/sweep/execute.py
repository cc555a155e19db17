"""Executing a job's chunks: in this process, or as Dask tasks on a cluster, with clear resumable faults."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from ..clusters import BackgroundCluster, connect
from ..errors import UserError, option
from ..stats.summary import Plan, Summary
from ..store import done_chunks, open_group, open_meta
from .gather import reduce_scatter, take_summaries
from .job import Job
from .progress import Progress
from .tasks import collect, compute_chunk, summarise_chunk, worker_state


class Merged:
    """The running sum of the chunk summaries returned by the tasks (constant memory in the client)."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.chunks: set[int] = set()

    def add(self, k: int, hist: np.ndarray) -> None:
        self.total = hist.astype(np.int64) if self.total is None else self.total + hist
        self.chunks.add(k)


def merge_histograms(job: Job, merged: Merged) -> np.ndarray:
    """The whole run's rank histogram: this session's merged summaries plus those stored by earlier ones."""
    g = open_group(job.path, mode="r")
    total = merged.total
    for k in sorted(set(range(job.n_chunks)) - merged.chunks):
        c = g["chunk_rank_count"][k].astype(np.int64)
        total = c if total is None else total + c
    return total


def execute(job: Job, todo: list[int], client, cluster, scheduler, scheduler_file, workers, synchronous,
             progress, gather: bool) -> tuple[Merged, Summary | None]:
    """Compute the chunks ``todo``; with ``gather``, also bring back the summaries of every chunk."""
    bar = Progress(job, todo, progress)
    try:
        if synchronous or (not todo and not gather):
            return _in_process(job, todo, bar, gather)
        if client is not None:
            return _on_client(client.client() if isinstance(client, BackgroundCluster) else client, job, todo,
                              bar, gather)
        with connect(cluster, scheduler=scheduler, scheduler_file=scheduler_file, workers=workers) as c:
            return _on_client(c, job, todo, bar, gather)
    except UserError:
        raise
    except Exception as exc:
        raise fault(job, exc) from None
    finally:
        bar.close()
        if isinstance(client, BackgroundCluster):
            client.release()  # shuts down while the store is finished


def fault(job: Job, exc: Exception) -> Exception:
    """Turn a failed write or a lost scheduler into a clear, resumable message; other errors pass."""
    done = int(done_chunks(Path(job.path)).sum())
    safe = f"{done} of {job.n_chunks} chunks are safely stored"
    text = f"{type(exc).__name__}: {exc}"
    names = {t.__name__ for t in type(exc).__mro__}
    if names & {"CommClosedError", "StreamClosedError", "TimeoutError", "CancelledError", "FutureCancelledError"} \
            or "Connection refused" in text:
        return UserError(f"lost the Dask scheduler ({type(exc).__name__}); {safe}: rerun with {option('resume')}")
    if isinstance(exc, OSError) or "No space" in text or "Errno 28" in text:
        return UserError(f"{job.path}: a write failed ({str(exc).splitlines()[0][:160]}); {safe}; free space or fix "
                         f"the path, then rerun with {option('resume')}")
    return exc


def _in_process(job: Job, todo: list[int], bar: Progress, gather: bool) -> tuple[Merged, Summary | None]:
    merged = Merged()
    for k in todo:
        merged.add(*compute_chunk(job, k))
        bar.update(k)
    if not gather:
        return merged, None
    summary = collect(job) or Summary(worker_state(job).plan, sobol=job.analyse)
    for k in sorted(set(range(job.n_chunks)) - summary.chunks):  # chunks of earlier sessions
        summarise_chunk(job, k)
    summary.merge(collect(job))
    return merged, summary


def _on_client(client, job: Job, todo: list[int], bar: Progress, gather: bool) -> tuple[Merged, Summary | None]:
    from distributed import as_completed

    tag = f"{job.key[:8]}-{job.n}"
    futures = client.map(compute_chunk, [job] * len(todo), todo, key=[f"chunk-{tag}-{k}" for k in todo],
                         retries=2, pure=False)
    merged = Merged()
    try:
        for fut in as_completed(futures):
            k, hist = fut.result()
            merged.add(k, hist)
            bar.update(k)
            fut.release()
    finally:
        client.cancel(futures)
    if not gather:
        return merged, None
    store = open_meta(job.path)
    plan = Plan.from_store(store)
    tag = f"{tag}-{uuid.uuid4().hex[:8]}"  # this gathering's tasks (a resumed run keeps its run id)
    summary, held = take_summaries(client, job, tag, Summary(plan, sobol=False), [])
    missing = sorted(set(range(job.n_chunks)) - summary.chunks)
    if missing:  # chunks of an earlier session, or whose summary died with its worker: recompute them
        futures = client.map(summarise_chunk, [job] * len(missing), missing, key=[f"sum-{tag}-{k}" for k in missing],
                             retries=2, pure=False)
        client.gather(futures)
        del futures
        summary, held = take_summaries(client, job, tag + "-2", summary, held)
        if set(range(job.n_chunks)) - summary.chunks:
            raise RuntimeError("the summaries of some chunks were lost twice; rerun `rankstab analyze`")
    if job.analyse and plan.sobol:
        conf = float(store.attrs.get("conf_level", 0.95))
        summary.results, summary.results_conf = reduce_scatter(client, tag, held, conf), conf
    return merged, summary
