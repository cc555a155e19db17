"""``rankstab verify``: completeness, hashes, ranks against scores, histograms against chunk sums."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..data import data_hash
from ..kernel.ranking import competition_rank
from .zarrio import dataset_from_store, open_store


def verify(path: str | Path) -> list[str]:
    """Integrity problems of a store (empty list = fine)."""
    path = Path(path)
    ds = open_store(path)
    problems = []
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
