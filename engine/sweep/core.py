"""``sweep``: run a spec's scenarios into a zarr store (create, resume, overwrite or grow it).

Results do not depend on the number of workers, the chunk size or interruptions: every scenario is a
pure function of its design row, and each task computes its own rows of the design (Sobol' points are
fast-forwarded), so any chunk can be recomputed alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..data import data_hash
from ..errors import UserError, option
from ..spec import Spec
from ..stats.summary import Summary
from ..store import (
    check_lease,
    check_store,
    consolidate,
    done_chunks,
    finalise,
    is_store,
    lock,
    open_group,
    read_attrs,
    write_index,
)
from ..store.atomic import remove_tree, staging_path, stale_siblings, swap_in
from ..validate import RESULTS, check_target, default_out, load
from .execute import execute, fault, merge_histograms
from .job import store_job
from .layout import create_store
from .progress import resolve as resolve_progress
from .stop import StopFlag, stop_on_signals, stopped

__all__ = ["RESULTS", "check_out", "default_out", "extend", "store_status", "sweep"]


def make_results_folder(path: Path) -> None:
    """Create the default ``results/`` folder when the store goes there (the only folder made for you)."""
    parent = path.expanduser().absolute().parent
    if not parent.is_dir() and parent.name == RESULTS.name and parent.parent.is_dir():
        parent.mkdir()


def check_out(path: Path, spec: Spec, resume: bool, overwrite: bool) -> bool:
    """Decide whether to create a new store (True) or resume (False); refuse conflicts clearly. ``resume``
    starts a store that does not exist yet: one command for the first run and every later one."""
    resume_, overwrite_, out_ = option("resume"), option("overwrite"), option("out")
    if not path.exists():
        return True
    if overwrite:
        if path.exists() and not is_store(path) and any(path.iterdir()):
            raise UserError(f"{path} exists and is not a rankstab store; refusing to overwrite it; choose another {out_}")
        return True
    attrs = read_attrs(path)
    if not attrs.get("spec_hash"):
        raise UserError(f"{path} exists and is not a rankstab store; choose another {out_}")
    if not resume:
        state = "complete" if attrs.get("complete") else "incomplete"
        raise UserError(f"{path} already exists ({state}); use {resume_} to finish it or {overwrite_} to replace it")
    check_store(path)  # the attributes a resumed run reads
    if attrs["spec_hash"] != spec.hash:
        raise UserError(f"{path} was made from a different spec ({attrs.get('spec_source', '?')}); {resume_} needs "
                        f"the same spec: use that spec, {overwrite_}, or another {out_}")
    if attrs.get("data_hash") != data_hash(spec.ds):
        raise UserError(f"{path} was made from different input data; {resume_} needs the same data: "
                        f"use {overwrite_} or another {out_}")
    return False


def store_status(spec: Spec, path: Path) -> str:
    """What ``rankstab run SPEC --out PATH --resume`` would do, in one line, or the UserError it would raise
    (another spec or data, another live run holding the lease); nothing is written."""
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
    ``progress``: "auto" (a notebook display in Jupyter, a bar on a terminal, else plain lines), "bar",
    "quiet" (a timestamped line every few seconds), "notebook" or None (nothing). ``max_chunks`` stops after that many
    chunks (the store stays incomplete and resumable; used to test interruption). ``grow`` doubles the
    base samples of a complete Sobol store and computes the new scenarios (see ``--until-ci``).
    ``analyse``: called with the store and the whole run's summary (accumulated by the tasks) once the
    store is complete, still under the store's lock (``rankstab run`` writes the analysis group with it).
    ``resume`` also starts a store that does not exist yet, and does nothing to a complete one.

    The store's lease is held meanwhile (:mod:`engine.store.lock`). SIGTERM, SIGUSR1, SIGHUP or Ctrl-C
    (in the main thread), a run left without workers for ``worker_timeout`` seconds
    (:func:`~.stop.worker_timeout`) or a lost lease stop the run cleanly: :class:`~engine.errors.Stopped`
    says how many chunks are stored.
    """
    progress = resolve_progress(progress)
    spec = load(spec)
    path = Path(out) if out else default_out(spec)
    if grow and not path.exists():
        raise UserError(f"{path}: nothing to extend (no such store)")
    replacing = overwrite and not grow and path.exists()
    check_target(spec, path, "--out" if out else None, new=not grow and (replacing or not path.exists()))
    make_results_folder(path)
    flag = StopFlag()
    with lock(path, on_lost=lambda message: flag.set(message, 2)) as lease, stop_on_signals(flag):
        if lease.took_over and progress:
            print(lease.took_over, file=sys.stderr)
        for stale in stale_siblings(path):  # left by a killed run (we hold the lock: nobody else writes them)
            remove_tree(stale)
        fresh = check_out(path, spec, resume or grow, overwrite and not grow)
        if fresh and resume and progress:
            print(f"{path} does not exist yet: starting it", file=sys.stderr)
        if not (fresh or grow) and _finished(path, analyse is not None):
            if progress:
                print(f"{path} is already complete: nothing to do", file=sys.stderr)
            return path
        target, created = path, False  # where the chunks are written; whether this call made the store there
        if grow:
            extend(path)
        elif fresh:
            staged = staging_path(path)
            try:
                create_store(spec, staged)
            except BaseException:
                remove_tree(staged, settle=0.5)  # not fully written (writes may be in flight): nothing existing was touched
                raise
            if path.exists() and max_chunks is None:
                target = staged  # replacing a store: it stays as it is until the new one is complete
            else:
                swap_in(staged, path)
                created = True
        try:
            _sweep_into(target, path, fresh, client, cluster, scheduler, scheduler_file, workers, synchronous,
                        progress, max_chunks, grow, analyse, flag, worker_timeout)
        except BaseException as exc:
            undone = _undo(exc, target, path, created)
            if isinstance(exc, KeyboardInterrupt):  # a signal, Ctrl-C, no workers left, a lost lease
                raise stopped(exc, path, replacing=target != path) from None
            raise undone from None
        if target != path:
            swap_in(target, path)
    return path


def _sweep_into(target: Path, path: Path, fresh: bool, client, cluster, scheduler, scheduler_file, workers,
                synchronous, progress, max_chunks, grow, analyse, flag: StopFlag, worker_timeout) -> None:
    job = store_job(target, analyse is not None)
    todo = [int(k) for k in np.flatnonzero(~done_chunks(target))]
    if not fresh and progress:
        verb = f"extending to {job.n:,} scenarios" if grow else "resuming"
        print(f"{verb} {path}: {len(todo)} of {job.n_chunks} chunks to compute", file=sys.stderr)
    if max_chunks is not None:
        todo = todo[:max_chunks]
    finish = max_chunks is None or len(todo) == int((~done_chunks(target)).sum())
    band = read_attrs(target).get("rank_count_layout") == "band"  # its histogram comes with the summaries
    merged, summary = execute(job, todo, client, cluster, scheduler, scheduler_file, workers, synchronous,
                              progress, gather=(analyse is not None or band) and finish, flag=flag,
                              wait_workers=worker_timeout)
    flag.finishing = True  # every chunk is stored: finish the store rather than stop now
    if finish:
        try:
            finalise(target, merge_histograms(job, merged, summary))
            if analyse is not None and summary is not None:
                analyse(target, summary)
        except OSError as exc:
            raise fault(job, exc) from None


def _undo(exc: BaseException, target: Path, path: Path, created: bool) -> BaseException:
    """After a failed sweep: a replacement store being built beside the old one is deleted (the old one
    was never touched); a store this call created in which no chunk got done is deleted too (there is
    nothing to resume). The error then says so instead of suggesting --resume."""
    reason = str(exc).split("; ")[0] if isinstance(exc, UserError) else ""
    if target != path:
        remove_tree(target)
        if isinstance(exc, UserError):
            return UserError(f"{path} is unchanged: the run replacing it stopped ({reason}) and its partial "
                             f"store was removed; fix the cause and rerun with {option('overwrite')}")
        return exc
    if created:
        try:
            nothing_done = not done_chunks(path).any()
        except Exception:  # noqa: BLE001 - an unreadable new store is of no use either
            nothing_done = True
        if nothing_done:
            remove_tree(path)
            if isinstance(exc, UserError) and option("resume") in str(exc):
                return UserError(f"{reason}; no chunk was computed, so the new store {path} was removed: fix "
                                 f"the cause and run again")
    return exc


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
    now = datetime.now(UTC).isoformat(timespec="seconds")
    g.attrs.update(design_n=2 * int(attrs["design_n"]), n_scenarios=n_new, n_chunks=n_chunks, complete=0,
                   extended=int(attrs.get("extended", 0)) + 1, date_modified=now,
                   history=f"{attrs.get('history', '')}\n{now} extended to {n_new:,} scenarios (--until-ci)".lstrip())
    consolidate(path)  # readers must see the new shapes
