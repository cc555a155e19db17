"""What runs on the workers: compute, summarise and write one chunk; hand over the process's summary.

Each worker process caches the spec, the prepared data and a running :class:`~engine.stats.summary.Summary`
of the chunks it computed, rebuilt from the store itself, so tasks stay tiny and no worker holds state the
run cannot lose.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from ..design import decode, design_rows, row_labels, weight_schemes
from ..kernel import Prepared, evaluate, shared
from ..spec import Spec
from ..stats.given import warm_up as given_warm_up
from ..stats.given_run import make_config
from ..stats.summary import Plan, SobolShard, Summary, output_slice, rank_deviation
from ..store import dataset_from_store, open_meta, write_chunk
from .job import Job
from .layout import nominal, varied_choices


@dataclass
class _Worker:
    spec: Spec
    prep: Prepared
    schemes: np.ndarray
    plan: Plan
    summary: Summary
    shard: SobolShard | None = None  # this process's share of sharded Sobol' sums (see engine.sweep.shards)


_CACHE: dict[tuple, _Worker] = {}


_LOCK = threading.Lock()


def worker_state(job: Job) -> _Worker:
    """Per-process cache of the spec, prepared data, weight schemes and the running summary of the chunks
    this process computed, rebuilt from the store."""
    key = (job.path, job.key, job.n, job.analyse)
    with _LOCK:
        if key not in _CACHE:
            _CACHE.clear()
            _CACHE[key] = _build_state(job)
        return _CACHE[key]


def _build_state(job: Job) -> _Worker:
    store = open_meta(job.path)  # no dask inside a worker, and memory independent of the number of scenarios
    ds = dataset_from_store(store)
    spec = Spec.from_text(job.spec_text, source=store.attrs.get("spec_source", "<store>"), ds=ds)
    prep = shared(spec.ds)  # in the analysing process: as the spec checks prepared it
    schemes = weight_schemes(spec, prep.tree, prep.data(spec.nominal.prep))
    plan = Plan.from_store(store)
    if job.analyse:
        plan = with_given(plan, spec, prep, schemes)
    return _Worker(spec, prep, schemes, plan, Summary(plan, sobol=job.analyse, sharded=bool(job.shards)))


def with_given(plan: Plan, spec: Spec, prep: Prepared, schemes: np.ndarray) -> Plan:
    """``plan`` with the given-data configuration of a Monte Carlo spec (scores of its first rows set the
    score classes), so that summaries accumulate first-order indices and delta from given data."""
    return replace(plan, given=make_config(spec, prep, schemes, plan.nominal_rank, plan.nominal_score))


def given_plan(job: Job, plan: Plan) -> Plan:
    """:func:`with_given` for the store of ``job`` (the analysis of a stored run)."""
    w = worker_state(job)
    return with_given(plan, w.spec, w.prep, w.schemes)


def outputs(job: Job, a: int, b: int, w: _Worker | None = None):
    """Design rows, decoded methodologies, scores and ranks of scenarios [a, b)."""
    w = w or worker_state(job)
    x = design_rows(w.spec, a, b)
    dec = decode(w.spec, w.prep.tree, x, w.schemes)
    scores, ranks = evaluate(w.prep, dec.batch)
    return x, dec, scores, ranks


def compute_chunk(job: Job, k: int) -> tuple:
    """Score, rank, summarise and write chunk ``k`` (its completion flag last); return ``k`` and its rank
    histogram (city, field, rank) over the stability rows (dense layout; None for the band layout): the
    small, mergeable part of the summary; for a sharded job also the shares of its outputs that other
    workers sum (see :func:`share`)."""
    a, b = job.bounds(k)
    w = worker_state(job)
    spec = w.spec
    x, dec, scores, ranks = outputs(job, a, b, w)
    dev = rank_deviation(ranks, w.plan.nominal_rank)
    hist = w.summary.add(k, scores, ranks, dev, dec.batch.weights, design=x)
    block, sample = row_labels(spec, a, b)
    rbar = (dev / ranks.shape[1]).astype(np.float32)
    arrays = {"rbar": rbar, "weight": dec.batch.weights, "design": x, "block": block, "sample": sample}
    arrays.update({name: dec.choices[name] for name in varied_choices(spec)})
    mode = spec.store
    if mode == "full":
        arrays["score"] = scores
    if mode in ("full", "ranks"):
        arrays["rank"] = ranks
    write_chunk(job.path, a, b, k, arrays, hist, job.n)
    if job.shards:
        return k, hist, share(job, k, a, scores, ranks, w)
    return k, hist


def share(job: Job, k: int, a: int, scores: np.ndarray, ranks: np.ndarray, w: _Worker) -> dict[int, tuple]:
    """The rank and score outputs of chunk ``k`` (starting at scenario ``a``) split into the job's shares:
    this worker's own share is added to its shard here, the others are returned (share -> (first base
    sample, ranks, scores; scores None when they are no Sobol' target) for their owners' :func:`absorb`."""
    first = a // w.plan.block_size
    r2 = ranks.reshape(len(ranks), -1)
    s2 = scores.reshape(len(scores), -1) if "score" in w.plan.targets else None  # scores travel when targets
    own = _own_share(job)
    out = {}
    for j in range(len(job.shards)):
        lo, hi = output_slice(r2.shape[1], j, len(job.shards))
        if j == own:  # added here from views of the chunk (no copy); the others travel, as contiguous copies
            absorb(job, j, k, (first, r2[:, lo:hi], None if s2 is None else s2[:, lo:hi]))
        else:
            out[j] = (first, np.ascontiguousarray(r2[:, lo:hi]),
                      None if s2 is None else np.ascontiguousarray(s2[:, lo:hi]))
    return out


def _own_share(job: Job) -> int | None:
    from distributed import get_worker

    try:
        address = get_worker().address
    except ValueError:  # not in a worker
        return None
    return job.shards.index(address) if address in job.shards else None


def share_of(result: tuple, j: int) -> tuple | None:
    """Share ``j`` of a chunk's outputs, from the result of :func:`compute_chunk` or :func:`share_chunk`
    (None when the computing worker owns share ``j``: it added it already)."""
    return result[-1].get(j)


def share_chunk(job: Job, k: int) -> tuple[int, dict[int, tuple]]:
    """Recompute chunk ``k`` (nothing written, no summary) and split its outputs as :func:`share`: for shards
    missing chunks of an earlier session."""
    w = worker_state(job)
    a, b = job.bounds(k)
    _, _, scores, ranks = outputs(job, a, b, w)
    return k, share(job, k, a, scores, ranks, w)


def shard_state(job: Job, j: int) -> SobolShard:
    """This process's shard ``j`` of the job (created empty on first use)."""
    w = worker_state(job)
    with _LOCK:
        if w.shard is None or w.shard.part != j or w.shard.parts != len(job.shards):
            w.shard = SobolShard(w.plan, j, len(job.shards))
        return w.shard


def absorb(job: Job, j: int, k: int, part: tuple | None) -> int:
    """Add share ``j`` of chunk ``k``'s outputs to this process's shard (a chunk counts once)."""
    if part is not None:
        shard = shard_state(job, j)
        with shard.lock:
            shard.add(k, *part)
    return k


def shard_chunks(job: Job, j: int) -> list[int]:
    """The chunks this process's shard ``j`` holds."""
    return sorted(shard_state(job, j).chunks)


def finish_shard(job: Job, j: int, conf: float) -> dict[str, dict]:
    """The Sobol' indices of this process's shard ``j`` (which is then released)."""
    shard = shard_state(job, j)
    with shard.lock:
        out = shard.result(conf)
    worker_state(job).shard = None
    return out


def summarise_chunk(job: Job, k: int) -> int:
    """Add chunk ``k`` (recomputed, not written) to this process's summary: for chunks of an earlier session."""
    w = worker_state(job)
    a, b = job.bounds(k)
    x, dec, scores, ranks = outputs(job, a, b, w)
    w.summary.add(k, scores, ranks, weights=dec.batch.weights, design=x)
    return k


def collect(job: Job) -> Summary | None:
    """This process's summary of ``job`` (handed over and replaced by an empty one), or None."""
    with _LOCK:
        w = _CACHE.get((job.path, job.key, job.n, job.analyse))
        if w is None:
            return None
        summary, w.summary = w.summary, Summary(w.plan, sobol=job.analyse, sharded=bool(job.shards))
        return summary


def collect_export(job: Job) -> dict | None:
    """:func:`collect`, as plain arrays and numbers for the trip to the client."""
    summary = collect(job)
    return None if summary is None else summary.export()


def warm_up(spec: str = "gtii-2019") -> None:
    """Compute and summarise one Saltelli block of a spec (the shipped default), storing nothing. It
    imports what tasks import lazily, loads the compiled numba kernels and fills the resample-count
    cache, so that processes forked afterwards (the local workers) start their first task warm."""
    import dask.array  # noqa: F401 - xarray imports it when a task first reads its store

    parsed = Spec.from_toml(spec)
    sp = Spec.from_text(parsed.text, source=parsed.source, ds=parsed.ds)  # as the workers do
    prep = Prepared(sp.ds)
    schemes = weight_schemes(sp, prep.tree, prep.data(sp.nominal.prep))
    nom = nominal(sp, prep, schemes)
    d, block = sp.design, sp.block_size
    plan = Plan(nom.rank.astype(np.int64), nom.score.astype(np.float32), d.kind, sp.n_scenarios, block, block,
                d.n, len(sp.groups), bool(d.second_order), int(d.num_resamples), 1,  # the seed Plan.from_store uses
                second_order_conf=bool(d.second_order_conf))
    x = design_rows(sp, 0, block)
    dec = decode(sp, prep.tree, x, schemes)
    scores, ranks = evaluate(prep, dec.batch)
    Summary(plan).add(0, scores, ranks, rank_deviation(ranks, plan.nominal_rank))
    given_warm_up()  # the given-data kernels of Monte Carlo runs
    row_labels(sp, 0, block)
