"""``sweep``: run a spec's scenarios into a zarr store (create, resume, overwrite or grow it).

Results do not depend on the number of workers, the chunk size or interruptions: every scenario is a
pure function of its design row, and each task computes its own rows of the design (Sobol' points are
fast-forwarded), so any chunk can be recomputed alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr

from ..data import data_hash
from ..errors import UserError, check_output_folder
from ..spec import Spec
from ..stats.summary import Summary
from ..store import done_chunks, finalise, is_store, lock, open_group, read_attrs, remove, write_index
from ..validate import load
from .execute import execute, fault, merge_histograms
from .job import store_job
from .layout import create_store

RESULTS = Path("results")


def default_out(spec: Spec) -> Path:
    return RESULTS / f"{spec.name}.zarr"


def check_parent(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir() and parent.parent.is_dir() and parent.name == RESULTS.name:
        parent.mkdir()  # the default results/ folder
    check_output_folder(path)


def check_out(path: Path, spec: Spec, resume: bool, overwrite: bool) -> bool:
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


def sweep(spec: Spec | str | Path, out: str | Path | None = None, client=None, *, resume: bool = False,
        overwrite: bool = False, cluster: str = "local", scheduler: str | None = None,
        scheduler_file: str | None = None, workers: int | None = None, synchronous: bool = False,
        progress: str | None = None, max_chunks: int | None = None, grow: bool = False,
        analyse: Callable[[Path, Summary], None] | None = None) -> Path:
    """Run a spec's sweep into a zarr store; return its path.

    ``client``: a ``distributed.Client`` (or a :class:`~engine.clusters.BackgroundCluster`) to use;
    otherwise one is made from ``cluster``/``scheduler``/``scheduler_file``/``workers`` (an embedded
    LocalCluster by default), or none with ``synchronous``.
    ``progress``: "bar", "quiet" (a line every few seconds) or None. ``max_chunks`` stops after that many
    chunks (the store stays incomplete and resumable; used to test interruption). ``grow`` doubles the
    base samples of a complete Sobol store and computes the new scenarios (see ``--until-ci``).
    ``analyse``: called with the store and the whole run's summary (accumulated by the tasks) once the
    store is complete, still under the store's lock (``rankstab run`` writes the analysis group with it).
    """
    spec = load(spec)
    path = Path(out) if out else default_out(spec)
    check_parent(path)
    with lock(path):
        fresh = check_out(path, spec, resume or grow, overwrite and not grow)
        if grow:
            extend(path)
        elif fresh:
            remove(path)
            try:
                create_store(spec, path)
            except BaseException:
                remove(path)  # a store whose layout was not fully written is of no use: nothing is lost
                raise
        job = store_job(path, analyse is not None)
        todo = [int(k) for k in np.flatnonzero(~done_chunks(path))]
        if not fresh and progress:
            verb = f"extending to {job.n:,} scenarios" if grow else "resuming"
            print(f"{verb} {path}: {len(todo)} of {job.n_chunks} chunks to compute", file=sys.stderr)
        if max_chunks is not None:
            todo = todo[:max_chunks]
        finish = max_chunks is None or len(todo) == int((~done_chunks(path)).sum())
        band = read_attrs(path).get("rank_count_layout") == "band"  # its histogram comes with the summaries
        merged, summary = execute(job, todo, client, cluster, scheduler, scheduler_file, workers, synchronous,
                                  progress, gather=(analyse is not None or band) and finish)
        if finish:
            try:
                finalise(path, merge_histograms(job, merged, summary))
                if analyse is not None and summary is not None:
                    analyse(path, summary)
            except OSError as exc:
                raise fault(job, exc) from None
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
