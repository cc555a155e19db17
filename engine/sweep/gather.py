"""After the sweep: take the workers' small summaries, fold their Sobol' sums in a tree and reduce-scatter them."""

from __future__ import annotations

from concurrent.futures import CancelledError

import numpy as np

from ..errors import EX_TEMPFAIL, Stopped, option
from ..stats.sobol import SobolSums
from ..stats.summary import Summary
from .job import Job
from .tasks import collect_export


def take_summaries(client, job: Job, tag: str, summary: Summary, held: list) -> tuple[Summary, list]:
    """Take the summaries the workers hold: their small parts (histograms, distributions) are merged into
    ``summary`` here; their Sobol' sums stay on the workers, as futures added to ``held`` (worker, future).
    A summary overlapping one already taken (a chunk run on two workers) is dropped: the caller recomputes
    the chunks it misses."""
    workers = list(client.scheduler_info(n_workers=-1)["workers"])
    exports = [client.submit(collect_export, job, workers=[w], allow_other_workers=False, pure=False,
                             key=f"collect-{tag}-{i}") for i, w in enumerate(workers)]
    heads = [client.submit(_head, f, workers=[w], allow_other_workers=False, pure=False, key=f"head-{tag}-{i}")
             for i, (w, f) in enumerate(zip(workers, exports, strict=True))]
    _wait_pinned(client, heads, workers)
    for w, f, h in zip(workers, exports, heads, strict=True):
        head = _result_from(client, h, w)  # None: the worker was lost meanwhile, its chunks are missed
        if head is not None and summary.merge(Summary.from_export(summary.plan, head)) and head["has_sums"]:
            held.append((w, f))
    return summary, held


def _wait_pinned(client, futures: list, workers: list[str], poll: float = 1.0) -> None:
    """Wait for tasks that need ``workers`` (their data live there); stop waiting, rather than forever, once
    one of those workers has left the cluster. The caller checks which futures finished."""
    from distributed import wait

    needed = set(workers)
    while any(f.status == "pending" for f in futures):
        try:
            wait(futures, timeout=poll)
        except TimeoutError:
            pass
        if not needed <= set(client.scheduler_info(n_workers=-1)["workers"]):
            client.cancel([f for f in futures if f.status == "pending"])
            return


def _result_from(client, future, worker: str, poll: float = 1.0):
    """The result of a task whose data lives only on ``worker``; None if it did not finish, or once that worker
    has left before its result could be fetched (a finished task's result is lost with its worker, and a
    task pinned there would never run again: waiting on it would wait forever)."""
    while future.status == "finished":
        try:
            return future.result(timeout=poll)
        except CancelledError:  # the scheduler gave the lost result up
            return None
        except TimeoutError:
            if worker not in client.scheduler_info(n_workers=-1)["workers"]:
                return None
    return None


def raise_errors(futures: list) -> None:
    """Raise the exception of a task that failed (rather than report it as a lost worker)."""
    for f in futures:
        if f.status == "error":
            f.result()


def _head(export: dict | None) -> dict | None:
    """A worker's summary without its Sobol' sums (``has_sums`` says whether it holds some)."""
    return None if export is None else dict(export, sums={}, has_sums=bool(export["sums"]))


def _slice(export: dict, part: int, parts: int) -> dict:
    """Outputs ``part`` of ``parts`` of every Sobol' sum of a worker's summary."""
    return {name: SobolSums.slice_export(s, part, parts) for name, s in export["sums"].items()}


def _total(states: list[dict]) -> SobolSums:
    """The sum of several exported Sobol' sums of the same outputs."""
    total = SobolSums.from_export(states[0])
    for other in states[1:]:
        total.merge(SobolSums.from_export(other))
    return total


def _finish(slices: list[dict], conf: float) -> dict[str, dict]:
    """Merge the workers' sums of one output slice and finish their Sobol' indices."""
    return {name: _total([s[name] for s in slices]).result(conf) for name in slices[0]}


FAN_IN = 4  # a fold task adds up the Sobol' sums of this many workers
MAX_PARTS = 16  # the reduce-scatter runs among at most this many holders of sums


def _add_sums(exports: list[dict]) -> dict:
    """The Sobol' sums of several workers' exports added up (the rest of each summary is merged already)."""
    return {"sums": {name: _total([e["sums"][name] for e in exports]).export() for name in exports[0]["sums"]}}


def _left_while_merging() -> Stopped:
    return Stopped(f"a worker left while the workers were merging the analysis; every chunk is stored: rerun "
                   f"with {option('resume')} to finish (the analysis is rebuilt from the stored chunks)", EX_TEMPFAIL)


def fold(client, tag: str, held: list) -> list:
    """Add up the workers' Sobol' sums in a tree, ``FAN_IN`` at a time on the first worker of each group,
    until at most ``MAX_PARTS`` workers hold them: the reduce-scatter that follows has MAX_PARTS² tasks
    whatever the cluster's size, and the fold about W / (FAN_IN - 1) (so about W tasks in all, not W²)."""
    level = 0
    while len(held) > MAX_PARTS:
        groups = [held[i:i + FAN_IN] for i in range(0, len(held), FAN_IN)]
        added = [client.submit(_add_sums, [f for _, f in g], workers=[g[0][0]], allow_other_workers=False,
                               pure=False, key=f"fold-{tag}-{level}-{i}") for i, g in enumerate(groups)]
        _wait_pinned(client, added, [w for w, _ in held])
        raise_errors(added)
        if any(f.status != "finished" for f in added):
            raise _left_while_merging()
        held = [(g[0][0], f) for g, f in zip(groups, added, strict=True)]
        level += 1
    return held


def gathering_tasks(workers: int) -> int:
    """Tasks of the final gathering on ``workers`` workers that all hold Sobol' sums: a collect and a head
    task each (:func:`take_summaries`), the fold's tasks, then P² slices and P finishing tasks."""
    tasks, held = 2 * workers, workers
    while held > MAX_PARTS:
        held = -(-held // FAN_IN)
        tasks += held
    return tasks + held * held + held


def reduce_scatter(client, tag: str, held: list, conf: float) -> dict[str, dict]:
    """Finish the Sobol' indices on the workers: worker j receives output slice j of every other worker's
    sums, merges them and computes the indices of its slice; only the indices come back. Each worker
    sends (P-1)/P of its sums, all at once, instead of the client receiving all of them. On a cluster of
    more than ``MAX_PARTS`` workers, the sums are first folded onto ``MAX_PARTS`` of them (:func:`fold`)."""
    held = fold(client, tag, held)
    parts = len(held)
    slices = [[client.submit(_slice, f, j, parts, workers=[w], allow_other_workers=False, pure=False,
                             key=f"slice-{tag}-{i}-{j}") for j in range(parts)] for i, (w, f) in enumerate(held)]
    finishing = [client.submit(_finish, [row[j] for row in slices], conf, workers=[held[j][0]],
                               allow_other_workers=True, pure=False, key=f"finish-{tag}-{j}") for j in range(parts)]
    _wait_pinned(client, finishing, [w for w, _ in held])
    raise_errors(finishing)
    if any(f.status != "finished" for f in finishing):
        raise _left_while_merging()
    finished = [_result_from(client, f, w) for f, (w, _) in zip(finishing, held, strict=True)]
    if any(f is None for f in finished):
        raise _left_while_merging()
    del slices, finishing
    return {name: {key: np.concatenate([f[name][key] for f in finished], axis=-1) for key in finished[0][name]}
            for name in finished[0]}
