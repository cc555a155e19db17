"""Compile (and cache) the engine's numba kernels once: ``python tests/precompile.py sobol|montecarlo`` runs
a small sweep of the default spec with its analysis, in one process, storing into a temporary directory.

On a fresh checkout numba's on-disk cache is empty, and every process that runs a sweep compiles the same
kernels (about 30 s of CPU per design kind); the test processes and the command lines they start would
otherwise compile them over and over, concurrently. conftest.py runs this once per design kind, in
parallel, before the test processes start.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parent.parent


def main(kind: str) -> None:
    text = (ROOT / "scenarios" / "gtii-2019.toml").read_text().replace("n = 16384", "n = 64")
    if kind == "montecarlo":
        text = text.replace('kind = "sobol"', 'kind = "montecarlo"').replace("second_order = true", "")
    with tempfile.TemporaryDirectory(prefix="rankstab-precompile-") as tmp:
        spec = Path(tmp) / f"precompile-{kind}.toml"
        spec.write_text(text)
        engine.run(spec, out=Path(tmp) / "precompile.zarr", synchronous=True, progress=None)


if __name__ == "__main__":
    main(sys.argv[1])
