"""``rankstab verify``: completeness, hashes, ranks against scores, histograms against chunk sums."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..data import data_hash
from ..kernel.ranking import competition_rank
from .zarrio import dataset_from_store, open_group, open_store

#: Per-scenario arrays none of whose written chunks can equal the fill value (zarr stores no file for such
#: a chunk): a chunk flagged done must have a file in each of them.
DENSE = ("score", "rank", "rbar", "design", "weight", "sample")


def lost_chunks(path: str | Path) -> list[str]:
    """Chunks flagged done whose files are missing (a file lost or deleted since the run): zarr would read
    them as fill values (NaN scores, rank 0) without a word. One problem per array, naming the first."""
    path = Path(path)
    g = open_group(path, mode="r")
    done = np.flatnonzero(g["chunk_done"][:])
    problems = []
    for name in DENSE:
        if name not in g:
            continue
        arr = g[name]
        missing = [int(k) for k in done
                   if not (path / name / arr.metadata.encode_chunk_key((int(k),) + (0,) * (arr.ndim - 1))).is_file()]
        if missing:
            first = path / name / arr.metadata.encode_chunk_key((missing[0],) + (0,) * (arr.ndim - 1))
            problems.append(f"{len(missing)} chunk(s) flagged done have lost their {name} file (first: {first})")
    return problems


def verify(path: str | Path) -> list[str]:
    """Integrity problems of a store (empty list = fine)."""
    path = Path(path)
    ds = open_store(path)
    problems = lost_chunks(path)
    done = ds["chunk_done"].values.astype(bool)
    if not done.all():
        problems.append(f"{int((~done).sum())} of {done.size} chunks are not complete (run with --resume)")
    if not ds.attrs.get("complete"):
        problems.append("the run was not finalised (attrs complete != 1)")
    inputs = dataset_from_store(ds)
    if data_hash(inputs) != ds.attrs.get("data_hash"):
        problems.append("the stored input data do not match the recorded data hash")
    if hashlib.sha256(ds.attrs.get("spec_toml", "").encode()).hexdigest() != ds.attrs.get("spec_hash"):
        problems.append("the stored spec text does not match the recorded spec hash")
    if "rank" in ds and "score" in ds and done.any():
        chunk = int(ds.attrs["chunk"])
        for k in np.flatnonzero(done):
            sl = slice(k * chunk, (k + 1) * chunk)
            s = ds["score"][sl].values
            r = ds["rank"][sl].values
            if not np.array_equal(competition_rank(s, axis=1), r):
                problems.append(f"chunk {k}: ranks are not consistent with scores")
                break
    if "rank_count" in ds and ds.attrs.get("complete"):
        count = ds["chunk_rank_count"].values.sum(axis=0)
        if not np.array_equal(count, ds["rank_count"].values):
            problems.append("rank_count does not equal the sum of the per-chunk counts")
    return problems


def verify_cli(args) -> int:
    problems = verify(args.store)
    if problems:
        for p in problems:
            print(f"rankstab verify: {args.store}: {p}")
        return 1
    print(f"{args.store}: OK")
    return 0
