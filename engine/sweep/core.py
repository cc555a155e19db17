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
from ..store import (
    check_lease,
    done_chunks,
    finalise,
    is_store,
    lock,
    open_group,
    read_attrs,
    remove,
    write_index,
)
from ..validate import load
from .execute import execute, fault, merge_histograms
from .job import store_job
from .layout import create_store
from .stop import StopFlag, stop_on_signals, stopped

RESULTS = Path("results")


def default_out(spec: Spec) -> Path:
    return RESULTS / f"{spec.name}.zarr"


def check_parent(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir() and parent.parent.is_dir() and parent.name == RESULTS.name:
        parent.mkdir()  # the default results/ folder
    check_output_folder(path)


def check_out(path: Path, spec: Spec, resume: bool, overwrite: bool) -> bool:
    """Decide whether to create a new store (True) or resume (False); refuse conflicts clearly. ``resume``
    starts a store that does not exist yet: one command for the first run and every later one."""
    if not path.exists():
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


def preflight(spec: Spec, path: Path) -> str:
    """What ``rankstab run SPEC --out PATH --resume`` would do, in one line, or the UserError it would raise
    (another spec or data, another live run holding the lease); nothing is written."""
    check_parent(path)
    check_lease(path)
    if not path.exists():
        return f"{path}: no store yet; `rankstab run --resume` starts it"
    check_out(path, spec, resume=True, overwrite=False)
    done = done_chunks(path)
    if read_attrs(path).get("complete"):
        return f"{path}: complete ({int(done.sum())} of {done.size} chunks stored)"
    return f"{path}: {int(done.sum())} of {done.size} chunks stored; `rankstab run --resume` continues it"


def sweep(spec: Spec | str | Path, out: str | Path | None = None, client=None, *, resume: bool = False,
        overwrite: bool = False, cluster: str = "local", scheduler: str | None = None,
        scheduler_file: str | None = None, workers: int | None = None, synchronous: bool = False,
        progress: str | None = None, max_chunks: int | None = None, grow: bool = False,
        analyse: Callable[[Path, Summary], None] | None = None, worker_timeout: float | None = None) -> Path:
    """Run a spec's sweep into a zarr store; return its path.

    ``client``: a ``distributed.Client`` (or a :class:`~engine.clusters.BackgroundCluster`) to use;
    otherwise one is made from ``cluster``/``scheduler``/``scheduler_file``/``workers`` (an embedded
    LocalCluster by default), or none with ``synchronous``.
    ``progress``: "bar", "quiet" (a line every few seconds) or None. ``max_chunks`` stops after that many
    chunks (the store stays incomplete and resumable; used to test interruption). ``grow`` doubles the
    base samples of a complete Sobol store and computes the new scenarios (see ``--until-ci``).
    ``analyse``: called with the store and the whole run's summary (accumulated by the tasks) once the
    store is complete, still under the store's lock (``rankstab run`` writes the analysis group with it).
    ``resume`` also starts a store that does not exist yet, and does nothing to a complete one.

    The store's lease is held meanwhile (:mod:`engine.store.lock`). SIGTERM or SIGUSR1 (in the main
    thread), a run left without workers for ``worker_timeout`` seconds (:func:`~.stop.worker_timeout`) or
    a lost lease stop the run cleanly: :class:`~engine.errors.Stopped` says how many chunks are stored.
    """
    spec = load(spec)
    path = Path(out) if out else default_out(spec)
    check_parent(path)
    if grow and not path.exists():
        raise UserError(f"{path}: nothing to extend (no such store)")
    flag = StopFlag()
    with lock(path, on_lost=lambda message: flag.set(message, 2)) as lease, stop_on_signals(flag):
        if lease.took_over and progress:
            print(lease.took_over, file=sys.stderr)
        try:
            fresh = check_out(path, spec, resume or grow, overwrite and not grow)
            if fresh and resume and progress:
                print(f"{path} does not exist yet: starting it", file=sys.stderr)
            if not (fresh or grow) and _finished(path, analyse is not None):
                if progress:
                    print(f"{path} is already complete: nothing to do", file=sys.stderr)
                return path
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
            merged, summary = execute(job, todo, client, cluster, scheduler, scheduler_file, workers, synchronous,
                                      progress, gather=analyse is not None and finish, flag=flag,
                                      wait_workers=worker_timeout)
        except KeyboardInterrupt as exc:  # a signal, Ctrl-C, no workers left, a lost lease
            raise stopped(exc, path) from None
        flag.finishing = True  # every chunk is stored: finish the store rather than stop now
        if finish:
            try:
                finalise(path, merge_histograms(job, merged))
                if analyse is not None and summary is not None:
                    analyse(path, summary)
            except OSError as exc:
                raise fault(job, exc) from None
    return path


def _finished(path: Path, analysed: bool) -> bool:
    """A complete store (with its analysis group when one is wanted): resuming it has nothing to do."""
    return bool(read_attrs(path).get("complete")) and (not analysed or (path / "analysis" / "zarr.json").exists())


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
