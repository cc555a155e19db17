"""After the sweep: take the workers' small summaries and reduce-scatter their Sobol' sums between them."""

from __future__ import annotations

import numpy as np

from ..errors import UserError, option
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
        head = h.result() if h.status == "finished" else None  # a worker lost meanwhile: its chunks are missed
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


def _head(export: dict | None) -> dict | None:
    """A worker's summary without its Sobol' sums (``has_sums`` says whether it holds some)."""
    return None if export is None else dict(export, sums={}, has_sums=bool(export["sums"]))


def _slice(export: dict, part: int, parts: int) -> dict:
    """Outputs ``part`` of ``parts`` of every Sobol' sum of a worker's summary."""
    return {name: SobolSums.slice_export(s, part, parts) for name, s in export["sums"].items()}


def _finish(slices: list[dict], conf: float) -> dict[str, dict]:
    """Merge the workers' sums of one output slice and finish their Sobol' indices."""
    out = {}
    for name in slices[0]:
        total = SobolSums.from_export(slices[0][name])
        for other in slices[1:]:
            total.merge(SobolSums.from_export(other[name]))
        out[name] = total.result(conf)
    return out


def reduce_scatter(client, tag: str, held: list, conf: float) -> dict[str, dict]:
    """Finish the Sobol' indices on the workers: worker j receives output slice j of every other worker's
    sums, merges them and computes the indices of its slice; only the indices come back. Each worker
    sends (W-1)/W of its sums, all at once, instead of the client receiving all of them."""
    parts = len(held)
    slices = [[client.submit(_slice, f, j, parts, workers=[w], allow_other_workers=False, pure=False,
                             key=f"slice-{tag}-{i}-{j}") for j in range(parts)] for i, (w, f) in enumerate(held)]
    finishing = [client.submit(_finish, [row[j] for row in slices], conf, workers=[held[j][0]],
                               allow_other_workers=True, pure=False, key=f"finish-{tag}-{j}") for j in range(parts)]
    _wait_pinned(client, finishing, [w for w, _ in held])
    if any(f.status != "finished" for f in finishing):
        raise UserError("a worker left while the workers were merging the analysis; every chunk is stored: "
                        f"rerun with {option('resume')} to finish (the analysis is rebuilt from the stored chunks)")
    finished = client.gather(finishing)
    del slices, finishing
    return {name: {key: np.concatenate([f[name][key] for f in finished], axis=-1) for key in finished[0][name]}
            for name in finished[0]}
