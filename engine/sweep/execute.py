"""Executing a job's chunks: in this process, or as Dask tasks on a cluster, with clear resumable faults."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from ..clusters import BackgroundCluster, connect
from ..errors import EX_TEMPFAIL, Stopped, UserError, option
from ..stats.rankhist import RankHistogram
from ..stats.summary import Plan, Summary
from ..store import done_chunks, open_group, open_meta
from .gather import reduce_scatter, take_summaries
from .job import Job
from .progress import Progress
from .shards import complete_shards, finish_shards, sharded, submit_chunk
from .stop import StopFlag, WorkerWatch, drain, worker_timeout
from .tasks import collect, compute_chunk, summarise_chunk, worker_state

ROUNDS = 4  # rounds of recomputing the summaries that workers took with them when they left


class Merged:
    """The running sum of the chunk summaries returned by the tasks (constant memory in the client)."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.chunks: set[int] = set()

    def add(self, k: int, hist: np.ndarray | None) -> None:
        if hist is not None:  # None: the band layout, whose total comes from the gathered summary
            self.total = hist.astype(np.int64) if self.total is None else self.total + hist
        self.chunks.add(k)


def merge_histograms(job: Job, merged: Merged, summary: Summary | None = None) -> np.ndarray | RankHistogram:
    """The whole run's rank histogram: this session's merged summaries plus those stored by earlier ones
    (dense layout), or the gathered summary's (band layout: no per-chunk histograms are stored)."""
    g = open_group(job.path, mode="r")
    if "chunk_rank_count" not in g:
        if summary is None:
            raise RuntimeError("the band layout needs the gathered summary for its rank histogram")
        return summary.hist
    total = merged.total
    for k in sorted(set(range(job.n_chunks)) - merged.chunks):
        c = g["chunk_rank_count"][k].astype(np.int64)
        total = c if total is None else total + c
    return total


def execute(job: Job, todo: list[int], client, cluster, scheduler, scheduler_file, workers, synchronous,
             progress, gather: bool, flag: StopFlag | None = None,
             wait_workers: float | None = None) -> tuple[Merged, Summary | None]:
    """Compute the chunks ``todo``; with ``gather``, also bring back the summaries of every chunk.
    ``flag`` stops the run when set (from another thread); on a cluster, a run left without workers waits
    ``wait_workers`` seconds (default :func:`~.stop.worker_timeout`) for new ones, then stops."""
    bar = Progress(job, todo, progress)
    flag = flag or StopFlag()
    try:
        if synchronous or (not todo and not gather):
            return _in_process(job, todo, bar, gather, flag)
        run = _Run(job, bar, gather, flag, worker_timeout(wait_workers))
        if client is not None:
            return run.on(client.client() if isinstance(client, BackgroundCluster) else client, todo)
        with connect(cluster, scheduler=scheduler, scheduler_file=scheduler_file, workers=workers) as c:
            return run.on(c, todo)
    except UserError:
        flag.check()  # a failure caused by stopping (cancelled tasks) is the stop
        raise
    except Exception as exc:
        flag.check()
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
    if "KilledWorker" in names:
        return UserError(f"the Dask workers kept dying while computing a chunk ({text[:200]}): out of memory, or "
                         f"killed by the batch system; {safe}: raise the workers' memory limit, then rerun with "
                         f"{option('resume')}")
    if names & {"CommClosedError", "StreamClosedError", "TimeoutError", "CancelledError", "FutureCancelledError"} \
            or "Connection refused" in text:
        return UserError(f"lost the Dask scheduler ({type(exc).__name__}); {safe}: rerun with {option('resume')}")
    if isinstance(exc, OSError) or "No space" in text or "Errno 28" in text:
        return UserError(f"{job.path}: a write failed ({str(exc).splitlines()[0][:160]}); {safe}; free space or fix "
                         f"the path, then rerun with {option('resume')}")
    return exc


def _in_process(job: Job, todo: list[int], bar: Progress, gather: bool,
                flag: StopFlag) -> tuple[Merged, Summary | None]:
    merged = Merged()
    for k in todo:
        flag.check()
        flag.deferring = True  # a signal stops the run once this chunk is stored, not halfway through
        try:
            merged.add(*compute_chunk(job, k))
        finally:
            flag.deferring = False
        bar.update(k)
    if not gather:
        return merged, None
    summary = collect(job) or Summary(worker_state(job).plan, sobol=job.analyse)
    for k in sorted(set(range(job.n_chunks)) - summary.chunks):  # chunks of earlier sessions
        summarise_chunk(job, k)
    summary.merge(collect(job))
    return merged, summary


class _Run:
    """A run on a Dask client: the chunk tasks, then the summaries; stopped cleanly when the flag is set
    (its tasks cancelled, the chunks being written waited for) or when a signal interrupts it."""

    def __init__(self, job: Job, bar: Progress, gather: bool, flag: StopFlag, wait_workers: float) -> None:
        self.job, self.bar, self.gather, self.flag, self.wait_workers = job, bar, gather, flag, wait_workers
        self.live: list = []  # the futures a stop cancels

    def _cancel(self) -> None:
        self.client.cancel(self.live)

    def on(self, client, todo: list[int]) -> tuple[Merged, Summary | None]:
        self.client = client
        self.store = open_meta(self.job.path)
        self.plan = Plan.from_store(self.store)
        with self.flag.on_set(self._cancel), WorkerWatch(client, self.wait_workers, self.flag):
            return self._chunks(todo), self._summaries()

    def _chunks(self, todo: list[int]) -> Merged:
        from distributed import as_completed

        client = self.client
        job = self.job = sharded(client, self.job, self.plan)
        self.tag = tag = f"{job.key[:8]}-{job.n}"
        self.absorbs = []
        if job.shards:  # every chunk computed once, its outputs' shares absorbed by their owners
            sent = [submit_chunk(client, job, k, tag) for k in todo]
            heads, self.absorbs = [h for h, _ in sent], [a for _, aa in sent for a in aa]
            del sent
        else:
            heads = client.map(compute_chunk, [job] * len(todo), todo, key=[f"chunk-{tag}-{k}" for k in todo],
                               retries=2, pure=False)
        self.live = heads + self.absorbs
        merged = Merged()
        try:
            for fut in as_completed(heads):
                self.flag.check()
                k, hist = fut.result()[:2]
                merged.add(k, hist)
                self.bar.update(k)
                fut.release()
        except KeyboardInterrupt:  # a signal, Ctrl-C or the flag: let the chunks being written finish
            client.cancel(self.live)
            drain(client, f"chunk-{tag}-")
            raise
        finally:
            client.cancel(heads)
            self.live = list(self.absorbs)
        self.todo = set(todo)
        return merged

    def _summaries(self) -> Summary | None:
        """Every chunk's summary: taken from the workers, recomputed for the chunks of earlier sessions and
        of workers that left (several rounds if workers keep leaving); Sobol' indices reduce-scattered."""
        if not self.gather:
            return None
        client, job, store, plan = self.client, self.job, self.store, self.plan
        tag = f"{self.tag}-{uuid.uuid4().hex[:8]}"  # this gathering's tasks (a resumed run keeps its run id)
        conf = float(store.attrs.get("conf_level", 0.95))
        sharded = {}
        if job.shards:  # finished (and released) first: each shard is most of its worker's memory
            complete_shards(client, job, self.absorbs, tag, self.todo)
            sharded = finish_shards(client, job, tag, conf)
        self.live = self.absorbs = []
        summary, held = take_summaries(client, job, tag, Summary(plan, sobol=False), [])
        for attempt in range(1, ROUNDS + 1):
            missing = sorted(set(range(job.n_chunks)) - summary.chunks)
            if not missing:
                break
            self.flag.check()
            self.live = client.map(summarise_chunk, [job] * len(missing), missing,
                                   key=[f"sum-{tag}-{attempt}-{k}" for k in missing], retries=2, pure=False)
            client.gather(self.live)
            self.live = []
            summary, held = take_summaries(client, job, f"{tag}-{attempt + 1}", summary, held)
        if set(range(job.n_chunks)) - summary.chunks:
            raise Stopped("workers kept leaving while the analysis was gathered; every chunk is stored", EX_TEMPFAIL)
        if job.analyse and plan.sobol:
            summary.results, summary.results_conf = reduce_scatter(client, tag, held, conf), conf
            summary.results.update(sharded)
        return summary
