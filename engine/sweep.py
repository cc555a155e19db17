"""Distributed sweeps: one Dask task per scenario chunk computes, writes its own region of the zarr store
and returns a small mergeable summary (the rank histogram of its stability rows).

Results do not depend on the number of workers, the chunk size or interruptions: every scenario is a
pure function of its design row, and each task computes its own rows of the design (Sobol' points are
fast-forwarded), so any chunk can be recomputed alone.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from . import __version__
from .cluster import BackgroundCluster
from .dataset import data_hash
from .design import auto_chunk, decode, design_rows, nominal_row, row_labels, weight_schemes
from .errors import UserError, check_output_folder
from .kernel import Prepared, evaluate
from .sobol import SobolSums, block_labels
from .spec import Spec
from .store import (
    CHOICE_VARS,
    BigArray,
    create,
    dataset_from_store,
    done_chunks,
    finalise,
    is_store,
    lock,
    open_group,
    open_meta,
    open_store,
    read_attrs,
    remove,
    write_chunk,
    write_index,
)
from .summary import Plan, Summary, rank_deviation

RESULTS = Path("results")


@dataclass(frozen=True)
class Job:
    """What a task needs: the store path, the spec text and the chunking. Workers rebuild the spec and
    its dataset from the store itself (cached per process), so tasks stay tiny and no worker holds
    state the run cannot lose. ``key`` identifies the store (its run id); ``analyse`` adds the Sobol sums
    to the workers' summaries."""

    path: str
    spec_text: str
    chunk: int
    n: int
    key: str
    analyse: bool = True

    def bounds(self, k: int) -> tuple[int, int]:
        return k * self.chunk, min((k + 1) * self.chunk, self.n)

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk)


@dataclass
class _Worker:
    spec: Spec
    prep: Prepared
    schemes: np.ndarray
    plan: Plan
    summary: Summary


_CACHE: dict[tuple, _Worker] = {}
_LOCK = threading.Lock()


def _state(job: Job) -> _Worker:
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
    spec = Spec.from_text(job.spec_text, source=store.attrs.get("spec_source", "<store>"), ds=ds, evaluate=False)
    prep = Prepared(spec.ds)
    schemes = weight_schemes(spec, prep.tree, prep.data(spec.nominal.prep))
    plan = Plan.from_store(store)
    return _Worker(spec, prep, schemes, plan, Summary(plan, sobol=job.analyse))


def outputs(job: Job, a: int, b: int, w: _Worker | None = None):
    """Design rows, decoded methodologies, scores and ranks of scenarios [a, b)."""
    w = w or _state(job)
    x = design_rows(w.spec, a, b)
    dec = decode(w.spec, w.prep.tree, x, w.schemes)
    scores, ranks = evaluate(w.prep, dec.batch)
    return x, dec, scores, ranks


def compute_chunk(job: Job, k: int) -> tuple[int, np.ndarray]:
    """Score, rank, summarise and write chunk ``k`` (its completion flag last); return ``k`` and its rank
    histogram (city, field, rank) over the stability rows: the small, mergeable part of the summary."""
    a, b = job.bounds(k)
    w = _state(job)
    spec = w.spec
    x, dec, scores, ranks = outputs(job, a, b, w)
    dev = rank_deviation(ranks, w.plan.nominal_rank)
    hist = w.summary.add(k, scores, ranks, dev)
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
    return k, hist


def summarise_chunk(job: Job, k: int) -> int:
    """Add chunk ``k`` (recomputed, not written) to this process's summary: for chunks of an earlier session."""
    w = _state(job)
    a, b = job.bounds(k)
    _, _, scores, ranks = outputs(job, a, b, w)
    w.summary.add(k, scores, ranks)
    return k


def collect(job: Job) -> Summary | None:
    """This process's summary of ``job`` (handed over and replaced by an empty one), or None."""
    with _LOCK:
        w = _CACHE.get((job.path, job.key, job.n, job.analyse))
        if w is None:
            return None
        summary, w.summary = w.summary, Summary(w.plan, sobol=job.analyse)
        return summary


def warm_up(spec: str = "gtii-2019") -> None:
    """Compute and summarise one Saltelli block of a spec (the shipped default), storing nothing. It
    imports what tasks import lazily, loads the compiled numba kernels and fills the resample-count
    cache, so that processes forked afterwards (the local workers) start their first task warm."""
    import dask.array  # noqa: F401 - xarray imports it when a task first reads its store

    parsed = Spec.from_toml(spec)
    sp = Spec.from_text(parsed.text, source=parsed.source, ds=parsed.ds, evaluate=False)  # as the workers do
    prep = Prepared(sp.ds)
    schemes = weight_schemes(sp, prep.tree, prep.data(sp.nominal.prep))
    nom = nominal(sp, prep, schemes)
    d, block = sp.design, sp.block_size
    plan = Plan(nom.rank.astype(np.int64), nom.score.astype(np.float32), d.kind, sp.n_scenarios, block, block,
                d.n, len(sp.groups), bool(d.second_order), int(d.num_resamples), 1)  # the seed Plan.from_store uses
    x = design_rows(sp, 0, block)
    dec = decode(sp, prep.tree, x, schemes)
    scores, ranks = evaluate(prep, dec.batch)
    Summary(plan).add(0, scores, ranks, rank_deviation(ranks, plan.nominal_rank))
    row_labels(sp, 0, block)


def collect_export(job: Job) -> dict | None:
    """:func:`collect`, as plain arrays and numbers for the trip to the client."""
    summary = collect(job)
    return None if summary is None else summary.export()


# ------------------------------------------------------------------------------------------ the store


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"rankstab": __version__, "python": sys.version.split()[0]}
    for pkg in ("numpy", "xarray", "zarr", "dask", "distributed", "SALib", "numba", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "unknown"
    return out


@dataclass
class Nominal:
    """The nominal scenario, computed through the same decode path as every other scenario."""

    score: np.ndarray  # (city, field)
    rank: np.ndarray
    choices: dict[str, str]  # its discrete choices (the constant value of every choice not varied)


def nominal(spec: Spec, prep: Prepared, schemes: np.ndarray) -> Nominal:
    dec = decode(spec, prep.tree, nominal_row(spec)[None], schemes)
    s, r = evaluate(prep, dec.batch)
    return Nominal(s[0], r[0], {k: str(v[0]) for k, v in dec.choices.items()})


def build_layout(spec: Spec, chunk: int, nom: Nominal, prep: Prepared) -> tuple[xr.Dataset, list[BigArray]]:
    """The store layout: small variables (coordinates, inputs, nominal) as an eager Dataset, and the
    per-scenario arrays as empty zarr arrays that the tasks fill chunk by chunk."""
    ds, tree = spec.ds, prep.tree
    n, n_c = spec.n_scenarios, ds.sizes["city"]
    fields = [*map(str, ds["field"].values), "overall"]
    n_f = len(fields)
    n_chunks = -(-n // chunk)
    sc = ("scenario",)
    big = [
        BigArray("score", (*sc, "city", "field"), (n, n_c, n_f), "float32", np.nan, chunk,
                 {"long_name": "composite score", "description": "score of each city in each field and overall"}),
        BigArray("rank", (*sc, "city", "field"), (n, n_c, n_f), "int16", 0, chunk,
                 {"long_name": "rank", "description": "1 = best; ties share the lowest rank (competition); 0 = no score"}),
        BigArray("rbar", (*sc, "field"), (n, n_f), "float32", np.nan, chunk,
                 {"long_name": "mean absolute rank shift from nominal over cities"}),
        BigArray("weight", (*sc, "node"), (n, len(tree.nodes)), "float64", np.nan, chunk,
                 {"long_name": "weight renormalised within its parent"}),
        BigArray("design", (*sc, "factor"), (n, len(spec.factors)), "float64", np.nan, chunk,
                 {"long_name": "unit-hypercube design row"}),
        BigArray("block", sc, (n,), f"<U{max(2, *map(len, block_labels(spec.groups, True)))}", "", chunk,
                 {"long_name": "Saltelli block of the row (A, B, AB_<factor>, BA_<factor>; MC for Monte Carlo)"}),
        BigArray("sample", sc, (n,), "int64", -1, chunk, {"long_name": "base-sample index"}),
        BigArray("chunk_done", ("chunk",), (n_chunks,), "int8", 0, 1, {"long_name": "chunk completion record"}),
        BigArray("chunk_rank_count", ("chunk", "city", "field", "rank_value"), (n_chunks, n_c, n_f, n_c), "int32", 0,
                 1, {"long_name": "rank histogram of each chunk's stability rows"}),
    ]
    if spec.store != "full":
        big = [b for b in big if b.name != "score"]
    if spec.store == "summary":
        big = [b for b in big if b.name != "rank"]
    varied = varied_choices(spec)
    for name in CHOICE_VARS:
        width = choice_width(spec, name)
        fill = "" if name in varied else nom.choices[name]  # constant when not varied: the fill value
        big.append(BigArray(name, sc, (n,), f"<U{width}", fill, chunk, {"long_name": f"{name} of the scenario"}))

    tpl = xr.Dataset({
        "nominal_score": (("city", "field"), nom.score),
        "nominal_rank": (("city", "field"), nom.rank),
        "value": ds["value"].reindex(field=fields).reset_coords(drop=True),
        "rank_count": (("city", "field", "rank_value"), np.zeros((n_c, n_f, n_c), dtype=np.int64)),
    })
    if "denominator_value" in ds:
        tpl["denominator_value"] = ds["denominator_value"].reset_coords(drop=True)
    coords = {c: ds[c] for c in ds.coords if ds[c].dims and ds[c].dims[0] in ("city", "indicator", "group",
                                                                                "denominator")}
    units = [*map(str, ds["group"].values), "", "overall"]
    f_ = spec.factors
    coords.update({
        "field": fields, "field_name": ("field", [*map(str, ds["field_name"].values), "Overall composite"]),
        "field_weight": ("field", [*map(float, ds["field_weight"].values), np.nan]),
        "node": tree.nodes, "node_level": ("node", tree.node_level()),
        "node_parent": ("node", [units[p] for p in tree.parent]), "node_nominal_weight": ("node", tree.nominal),
        "factor": [f.name for f in f_], "factor_kind": ("factor", [f.kind for f in f_]),
        "factor_group": ("factor", [f.group for f in f_]), "factor_node": ("factor", [f.node for f in f_]),
        "factor_range": ("factor", [f.p for f in f_]), "factor_choices": ("factor", ["|".join(f.choices) for f in f_]),
        "factor_nominal": ("factor", [f.nominal for f in f_]),
        "chunk": np.arange(n_chunks), "rank_value": np.arange(1, n_c + 1, dtype=np.int16),
    })
    tpl = tpl.assign_coords(coords)
    d = spec.design
    tpl.attrs.update(
        spec_toml=spec.text, spec_hash=spec.hash, spec_name=spec.name, spec_source=spec.source,
        design_kind=d.kind, design_n=d.n, second_order=int(d.second_order), seed=d.seed, sampler=d.sampler,
        n_scenarios=n, chunk=chunk, n_chunks=n_chunks, store_mode=spec.store, block_size=spec.block_size,
        factor_groups=json.dumps(spec.groups), num_resamples=d.num_resamples, conf_level=d.conf_level,
        dataset=spec.dataset_ref, data_hash=data_hash(ds), synthetic=int(ds.attrs.get("synthetic", 0)),
        dataset_attrs=json.dumps({k: (int(v) if isinstance(v, bool | np.integer) else v)
                                  for k, v in ds.attrs.items()}),
        versions=json.dumps(_versions()), rankstab_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"), complete=0, run_id=uuid.uuid4().hex,
    )
    return tpl, big


# ---------------------------------------------------------------------------------------------- run


def varied_choices(spec: Spec) -> list[str]:
    """The choice variables some factor varies (the others are constant and written at creation)."""
    kinds = {f.kind for f in spec.factors}
    return [name for name in CHOICE_VARS if ("exclude" if name == "excluded" else name) in kinds]


def choice_width(spec: Spec, name: str) -> int:
    """String width of a choice variable: its longest possible value."""
    kind = "exclude" if name == "excluded" else name
    if kind == "aggregation":
        from .design import aggregation_methods

        return max(map(len, aggregation_methods(spec)))
    values = [str(v) for f in spec.factors if f.kind == kind for v in f.choices]
    nominal = {"exclude": spec.nominal.exclude, "weight_scheme": spec.nominal.weight_scheme,
               "aggregation": spec.nominal.aggregation.name}
    values.append(str(nominal.get(kind, getattr(spec.nominal, kind, ""))))
    return max(1, *map(len, values))


def default_out(spec: Spec) -> Path:
    return RESULTS / f"{spec.name}.zarr"


def _check_parent(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir() and parent.parent.is_dir() and parent.name == RESULTS.name:
        parent.mkdir()  # the default results/ folder
    check_output_folder(path)


def _check_out(path: Path, spec: Spec, resume: bool, overwrite: bool) -> bool:
    """Decide whether to create a new store (True) or resume (False); refuse conflicts clearly."""
    if not path.exists():
        if resume:
            raise UserError(f"{path}: nothing to resume (no such store); run without --resume")
        return True
    if overwrite:
        if path.exists() and not is_store(path) and any(path.iterdir()):
            raise UserError(f"{path} exists and is not a rankstab store; refusing to overwrite it; choose another --out")
        return True
    attrs = read_attrs(path)
    if not attrs.get("spec_hash"):
        raise UserError(f"{path} exists and is not a rankstab store; choose another --out")
    if not resume:
        state = "complete" if attrs.get("complete") else "incomplete"
        raise UserError(f"{path} already exists ({state}); use --resume to finish it or --overwrite to replace it")
    if attrs["spec_hash"] != spec.hash:
        raise UserError(f"{path} was made from a different spec ({attrs.get('spec_source', '?')}); --resume needs the "
                        f"same spec: use that spec, --overwrite, or another --out")
    if attrs.get("data_hash") != data_hash(spec.ds):
        raise UserError(f"{path} was made from different input data; --resume needs the same data: "
                        f"use --overwrite or another --out")
    return False


def run(spec: Spec | str | Path, out: str | Path | None = None, client=None, **kwargs) -> xr.Dataset:
    """Run a spec's sweep into a zarr store and return it opened lazily (keywords: see :func:`sweep`)."""
    return open_store(sweep(spec, out, client, **kwargs))


def sweep(spec: Spec | str | Path, out: str | Path | None = None, client=None, *, resume: bool = False,
        overwrite: bool = False, cluster: str = "local", scheduler: str | None = None,
        scheduler_file: str | None = None, workers: int | None = None, synchronous: bool = False,
        progress: str | None = None, max_chunks: int | None = None, grow: bool = False,
        analyse: bool = True) -> Path:
    """Run a spec's sweep into a zarr store; return its path.

    ``client``: a ``distributed.Client`` (or a :class:`~engine.cluster.BackgroundCluster`) to use;
    otherwise one is made from ``cluster``/``scheduler``/``scheduler_file``/``workers`` (an embedded
    LocalCluster by default), or none with ``synchronous``.
    ``progress``: "bar", "quiet" (a line every few seconds) or None. ``max_chunks`` stops after that many
    chunks (the store stays incomplete and resumable; used to test interruption). ``grow`` doubles the
    base samples of a complete Sobol store and computes the new scenarios (see ``--until-ci``).
    ``analyse`` writes the analysis (group ``analysis``) from the summaries the tasks accumulated.
    """
    if not isinstance(spec, Spec):
        spec = Spec.from_toml(spec)
    path = Path(out) if out else default_out(spec)
    _check_parent(path)
    with lock(path):
        fresh = _check_out(path, spec, resume or grow, overwrite and not grow)
        if grow:
            extend(path)
        elif fresh:
            remove(path)
            try:
                _create(spec, path)
            except BaseException:
                remove(path)  # a store whose layout was not fully written is of no use: nothing is lost
                raise
        job = store_job(path, analyse)
        todo = [int(k) for k in np.flatnonzero(~done_chunks(path))]
        if not fresh and progress:
            verb = f"extending to {job.n:,} scenarios" if grow else "resuming"
            print(f"{verb} {path}: {len(todo)} of {job.n_chunks} chunks to compute", file=sys.stderr)
        if max_chunks is not None:
            todo = todo[:max_chunks]
        finish = max_chunks is None or len(todo) == int((~done_chunks(path)).sum())
        merged, summary = _execute(job, todo, client, cluster, scheduler, scheduler_file, workers, synchronous,
                                   progress, gather=analyse and finish)
        if isinstance(client, BackgroundCluster):
            client.release()  # shuts down while the store is finished
        if finish:
            try:
                finalise(path, _merge(job, merged))
                if summary is not None:
                    from .analysis import build, write_analysis

                    write_analysis(path, build(open_meta(path), summary))
            except OSError as exc:
                raise _fault(job, exc) from None
    return path


def extend(path: str | Path) -> None:
    """Double the base samples of a complete Sobol store along the same Sobol' sequence: every
    per-scenario array grows, the new chunks (and a partial last chunk) are marked not done."""
    path = Path(path)
    attrs = read_attrs(path)
    if attrs.get("design_kind") != "sobol" or not attrs.get("complete"):
        raise UserError(f"{path}: only a complete Sobol run can be extended (--until-ci)")
    n_old, chunk = int(attrs["n_scenarios"]), int(attrs["chunk"])
    n_new = 2 * n_old
    n_chunks = -(-n_new // chunk)
    g = open_group(path)
    for arr in g.array_values():
        dims = arr.metadata.dimension_names or ()
        if dims and dims[0] in ("scenario", "chunk"):
            arr.resize((n_new if dims[0] == "scenario" else n_chunks, *arr.shape[1:]))
    write_index(g["scenario"], n_old, n_new)
    g["chunk"][:] = np.arange(n_chunks)
    if n_old % chunk:  # the old last chunk is partial: recompute it whole (same values for its old rows)
        g["chunk_done"][n_old // chunk] = 0
    g.attrs.update(design_n=2 * int(attrs["design_n"]), n_scenarios=n_new, n_chunks=n_chunks, complete=0,
                   extended=int(attrs.get("extended", 0)) + 1)
    zarr.consolidate_metadata(str(path))  # readers must see the new shapes


def _create(spec: Spec, path: Path) -> None:
    prep = Prepared(spec.ds)
    schemes = weight_schemes(spec, prep.tree, prep.data(spec.nominal.prep))
    chunk = auto_chunk(spec, spec.ds.sizes["city"], spec.ds.sizes["field"])
    create(path, *build_layout(spec, chunk, nominal(spec, prep, schemes), prep))


def store_job(path: str | Path, analyse: bool = True) -> Job:
    """The job of a store, from its attributes (its spec text, chunking and run id)."""
    attrs = read_attrs(Path(path))
    key = str(attrs.get("run_id") or f"{attrs['spec_hash']}-{attrs.get('created')}")
    return Job(str(path), attrs["spec_toml"], int(attrs["chunk"]), int(attrs["n_scenarios"]), key, analyse)


class Merged:
    """The running sum of the chunk summaries returned by the tasks (constant memory in the client)."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.chunks: set[int] = set()

    def add(self, k: int, hist: np.ndarray) -> None:
        self.total = hist.astype(np.int64) if self.total is None else self.total + hist
        self.chunks.add(k)


def _merge(job: Job, merged: Merged) -> np.ndarray:
    """The whole run's rank histogram: this session's merged summaries plus those stored by earlier ones."""
    g = open_group(job.path, mode="r")
    total = merged.total
    for k in sorted(set(range(job.n_chunks)) - merged.chunks):
        c = g["chunk_rank_count"][k].astype(np.int64)
        total = c if total is None else total + c
    return total


def _execute(job: Job, todo: list[int], client, cluster, scheduler, scheduler_file, workers, synchronous,
             progress, gather: bool) -> tuple[Merged, Summary | None]:
    """Compute the chunks ``todo``; with ``gather``, also bring back the summaries of every chunk."""
    bar = Progress(job, todo, progress)
    try:
        if synchronous or (not todo and not gather):
            return _in_process(job, todo, bar, gather)
        if client is not None:
            return _on_client(client.client() if isinstance(client, BackgroundCluster) else client, job, todo,
                              bar, gather)
        from .cluster import connect

        with connect(cluster, scheduler=scheduler, scheduler_file=scheduler_file, workers=workers) as c:
            return _on_client(c, job, todo, bar, gather)
    except UserError:
        raise
    except Exception as exc:
        raise _fault(job, exc) from None
    finally:
        bar.close()


def _fault(job: Job, exc: Exception) -> Exception:
    """Turn a failed write or a lost scheduler into a clear, resumable message; other errors pass."""
    done = int(done_chunks(Path(job.path)).sum())
    safe = f"{done} of {job.n_chunks} chunks are safely stored"
    text = f"{type(exc).__name__}: {exc}"
    names = {t.__name__ for t in type(exc).__mro__}
    if names & {"CommClosedError", "StreamClosedError", "TimeoutError", "CancelledError", "FutureCancelledError"} \
            or "Connection refused" in text:
        return UserError(f"lost the Dask scheduler ({type(exc).__name__}); {safe}: rerun with --resume")
    if isinstance(exc, OSError) or "No space" in text or "Errno 28" in text:
        return UserError(f"{job.path}: a write failed ({str(exc).splitlines()[0][:160]}); {safe}; free space or fix "
                         f"the path, then rerun with --resume")
    return exc


def _in_process(job: Job, todo: list[int], bar: Progress, gather: bool) -> tuple[Merged, Summary | None]:
    merged = Merged()
    for k in todo:
        merged.add(*compute_chunk(job, k))
        bar.update(k)
    if not gather:
        return merged, None
    summary = collect(job) or Summary(_state(job).plan, sobol=job.analyse)
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
    summary, held = _gather(client, job, tag, Summary(plan, sobol=False), [])
    missing = sorted(set(range(job.n_chunks)) - summary.chunks)
    if missing:  # chunks of an earlier session, or whose summary died with its worker: recompute them
        futures = client.map(summarise_chunk, [job] * len(missing), missing, key=[f"sum-{tag}-{k}" for k in missing],
                             retries=2, pure=False)
        client.gather(futures)
        del futures
        summary, held = _gather(client, job, tag + "-2", summary, held)
        if set(range(job.n_chunks)) - summary.chunks:
            raise RuntimeError("the summaries of some chunks were lost twice; rerun `rankstab analyze`")
    if job.analyse and plan.sobol:
        conf = float(store.attrs.get("conf_level", 0.95))
        summary.results, summary.results_conf = _reduce_scatter(client, tag, held, conf), conf
    return merged, summary


def _gather(client, job: Job, tag: str, summary: Summary, held: list) -> tuple[Summary, list]:
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


def _reduce_scatter(client, tag: str, held: list, conf: float) -> dict[str, dict]:
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
                        "rerun with --resume to finish (the analysis is rebuilt from the stored chunks)")
    finished = client.gather(finishing)
    del slices, finishing
    return {name: {key: np.concatenate([f[name][key] for f in finished], axis=-1) for key in finished[0][name]}
            for name in finished[0]}


class Progress:
    """Scenarios done / total, rate and ETA: a bar on a terminal, a line every few seconds with quiet."""

    def __init__(self, job: Job, todo: list[int], mode: str | None) -> None:
        self.job, self.mode = job, mode
        self.total = job.n
        self.done = job.n - sum(job.bounds(k)[1] - job.bounds(k)[0] for k in todo)
        self.start_done = self.done
        self.t0 = self.last = time.perf_counter()

    def update(self, k: int) -> None:
        a, b = self.job.bounds(k)
        self.done += b - a
        now = time.perf_counter()
        if self.mode == "bar" or (self.mode == "quiet" and now - self.last >= 5.0):
            self.last = now
            self._print(now)

    def _print(self, now: float, end: str = "") -> None:
        el = max(now - self.t0, 1e-9)
        rate = (self.done - self.start_done) / el
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        frac = self.done / self.total
        msg = (f"{self.done:,}/{self.total:,} scenarios ({frac:6.1%}) {rate:,.0f}/s "
               f"elapsed {el:5.1f}s ETA {eta:5.1f}s")
        if self.mode == "bar":
            width = 28
            fill = int(frac * width)
            sys.stderr.write("\r[" + "#" * fill + "." * (width - fill) + "] " + msg + end)
        else:
            sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.mode == "bar":
            self._print(time.perf_counter(), end="\n")
        elif self.mode == "quiet":
            self._print(time.perf_counter())


def run_cli(args) -> int:
    t0 = time.perf_counter()
    spec = Spec.from_toml(args.spec)  # a bad spec or output folder fails before any cluster starts
    _check_parent(Path(args.out) if args.out else default_out(spec))
    if args.until_ci and spec.design.kind != "sobol":
        raise UserError("--until-ci needs a Sobol design (kind = \"sobol\")")
    where = dict(cluster=args.cluster, scheduler=args.scheduler, scheduler_file=args.scheduler_file,
                 workers=args.workers)
    bg = None if args.synchronous else BackgroundCluster(**where)  # workers start while the store is created
    try:
        return _run_cli(args, spec, bg, where, t0)
    finally:
        if bg is not None:
            bg.close()


def _run_cli(args, spec: Spec, bg: BackgroundCluster | None, where: dict, t0: float) -> int:
    mode = "quiet" if args.quiet or not sys.stderr.isatty() else "bar"
    kw = dict(synchronous=args.synchronous, progress=mode)
    analyse = not args.no_analyze or bool(args.until_ci)
    path = sweep(spec, args.out, bg, resume=args.resume, overwrite=args.overwrite, analyse=analyse, **kw)
    el = time.perf_counter() - t0
    n = int(read_attrs(path)["n_scenarios"])
    what = "swept and analysed" if analyse else "swept"
    print(f"wrote {path} ({n:,} scenarios {what} in {el:.1f} s, {n / el:,.0f} scenarios/s)")
    if not analyse:
        return 0
    from .analysis import open_analysis, summary_table

    result = open_analysis(path).load()
    if args.until_ci:
        for _ in range(args.max_doublings):
            widest = result.attrs["max_ST_conf"]
            if widest <= args.until_ci:
                break
            print(f"widest ST interval +-{widest:.3f} > {args.until_ci}: doubling N", file=sys.stderr)
            sweep(spec, path, grow=True, **kw, **where)  # on a fresh cluster: the first one was released
            result = open_analysis(path).load()
        widest = result.attrs["max_ST_conf"]
        state = "reached" if widest <= args.until_ci else f"not reached after {args.max_doublings} doublings"
        print(f"convergence: widest ST interval +-{widest:.3f}, target {args.until_ci} {state} "
              f"(N = {int(read_attrs(path)['design_n']):,})")
    print(summary_table(result))
    if not args.no_report:
        from .report import report

        print(f"report: {report(path)}")
    return 0
