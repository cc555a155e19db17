"""Sharded Sobol' sums: when the sums of every rank and score output are too big for one process (2000
cities x 21 fields x 27 factors x 100 resamples is several GB), each worker owns one share of the outputs.

A chunk's task computes its scenarios once, adds its own share to its shard and leaves the other shares
as its result; one small task per share picks it where it lies and the owner adds it to its shard
(``absorb``, pinned to the owner). Every share of every chunk is summed exactly once, by its owner, so no
process ever holds the sums of all outputs; at the end each owner finishes the indices of its share and
only those come back. Chunks of an earlier session are recomputed once and shared the same way. A worker
that leaves with its shard loses sums that live nowhere else: the run stops with a clear message, and
``--resume`` rebuilds them from the stored chunks.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import EX_TEMPFAIL, Stopped, option
from ..stats.summary import SHARD_BYTES, Plan, sums_bytes
from .gather import _wait_pinned, raise_errors
from .job import Job
from .tasks import absorb, compute_chunk, finish_shard, shard_chunks, share_chunk, share_of


def _lost() -> Stopped:
    """A worker left with its shard: a resumable stop (exit 75), as for any worker lost while gathering."""
    return Stopped(f"a worker holding part of the Sobol' sums left the cluster; every computed chunk is stored: "
                   f"rerun with {option('resume')} to finish (the sums are rebuilt from the stored chunks)",
                   EX_TEMPFAIL)


def sharded(client, job: Job, plan: Plan) -> Job:
    """The job with its Sobol' sums shared between the cluster's workers, when they are too big for one
    process (and there is a Sobol' analysis to make); else the job as it is."""
    if not (job.analyse and plan.sobol and sums_bytes(plan) > SHARD_BYTES):
        return job
    return replace(job, shards=tuple(sorted(client.scheduler_info(n_workers=-1)["workers"])))


def _head(result: tuple) -> tuple:
    """``k`` and the rank histogram of a :func:`compute_chunk` result, without its shares."""
    return result[0], result[1]


def submit_chunk(client, job: Job, k: int, tag: str, compute: bool = True) -> tuple:
    """Submit chunk ``k`` (computed and written, or only recomputed for the shards) and the tasks carrying
    its shares to their owners; return the future of its head (or None) and those of the absorbs. The
    client keeps no future of the big results, so they are freed as soon as their shares are absorbed."""
    fn = compute_chunk if compute else share_chunk
    prio = -2 * k  # a chunk's shares are absorbed before the next chunk is computed
    fut = client.submit(fn, job, k, key=f"{'chunk' if compute else 'share'}-{tag}-{k}", retries=2, pure=False,
                        priority=prio)
    head = client.submit(_head, fut, key=f"head-{tag}-{k}", pure=False, priority=prio + 1) if compute else None
    absorbs = []
    for j, owner in enumerate(job.shards):
        part = client.submit(share_of, fut, j, key=f"part-{tag}-{k}-{j}", pure=False, priority=prio + 1)
        absorbs.append(client.submit(absorb, job, j, k, part, key=f"absorb-{tag}-{k}-{j}", workers=[owner],
                                     allow_other_workers=False, pure=False, priority=prio + 1))
    return head, absorbs


def complete_shards(client, job: Job, absorbs: list, tag: str, computed: set[int]) -> None:
    """Wait for the shares in flight, then recompute and share the chunks the shards still miss (those of
    an earlier session); a clear error if an owner left."""
    _wait_pinned(client, absorbs, list(job.shards))
    raise_errors(absorbs)
    if any(f.status != "finished" for f in absorbs):
        raise _lost()
    missing = sorted(set(range(job.n_chunks)) - computed)
    more = [a for k in missing for a in submit_chunk(client, job, k, tag, compute=False)[1]]
    _wait_pinned(client, more, list(job.shards))
    raise_errors(more)
    if any(f.status != "finished" for f in more):
        raise _lost()
    held = [client.submit(shard_chunks, job, j, workers=[w], allow_other_workers=False, pure=False,
                          key=f"held-{tag}-{j}") for j, w in enumerate(job.shards)]
    _wait_pinned(client, held, list(job.shards))
    raise_errors(held)
    if any(f.status != "finished" or f.result() != list(range(job.n_chunks)) for f in held):
        raise _lost()


def finish_shards(client, job: Job, tag: str, conf: float) -> dict[str, dict]:
    """Each owner finishes the Sobol' indices of its share; the shares' indices joined along the outputs."""
    finishing = [client.submit(finish_shard, job, j, conf, workers=[w], allow_other_workers=False, pure=False,
                               key=f"finish-shard-{tag}-{j}") for j, w in enumerate(job.shards)]
    _wait_pinned(client, finishing, list(job.shards))
    raise_errors(finishing)
    if any(f.status != "finished" for f in finishing):
        raise _lost()
    parts = client.gather(finishing)
    del finishing
    return {name: {key: np.concatenate([p[name][key] for p in parts], axis=-1) for key in parts[0][name]}
            for name in parts[0]}
