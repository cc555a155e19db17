"""The job of a store: what every task needs to compute any of its chunks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store import read_attrs


@dataclass(frozen=True)
class Job:
    """What a task needs: the store path, the spec text and the chunking. Workers rebuild the spec and
    its dataset from the store itself (cached per process), so tasks stay tiny and no worker holds
    state the run cannot lose. ``key`` identifies the store (its run id); ``analyse`` adds the Sobol sums
    to the workers' summaries; ``shards`` (worker addresses) splits those of the rank and score outputs
    between these workers (see :mod:`engine.sweep.shards`)."""

    path: str
    spec_text: str
    chunk: int
    n: int
    key: str
    analyse: bool = True
    shards: tuple[str, ...] = ()  # workers owning the rank and score Sobol' sums' shares, in order (if sharded)

    def bounds(self, k: int) -> tuple[int, int]:
        return k * self.chunk, min((k + 1) * self.chunk, self.n)

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk)


def store_job(path: str | Path, analyse: bool = True) -> Job:
    """The job of a store, from its attributes (its spec text, chunking and run id)."""
    attrs = read_attrs(Path(path))
    key = str(attrs.get("run_id") or f"{attrs['spec_hash']}-{attrs.get('created')}")
    return Job(str(path), attrs["spec_toml"], int(attrs["chunk"]), int(attrs["n_scenarios"]), key, analyse)
