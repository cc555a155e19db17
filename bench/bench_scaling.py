"""How the cost of a sweep grows with cities, fields, indicators and factors: one core, in this process (no
Dask, no zarr), measured in one run on SYNTHETIC seeded data (bench/large_data.py).

For each size: the simple limit (one matmul + one argsort over cities, as in bench_sweep.py), the kernel's
rate (design, decode, scores, ranks) and the rate with everything a task adds for the analysis (rank
histograms, correlations, central-weight and given-data sums; Sobol' sums for Sobol designs), in
scenarios per second, and the bytes per scenario of a full store (float32 scores + int16 ranks, before
compression). Monte Carlo with the spec of bench_sweep.py --large (group and field weights, normalisation,
aggregation: 2 + fields + groups factors); the factor rows are Sobol runs (first order) of the same data
with and without the field-weight factors.

Usage: python bench/bench_scaling.py [--quick]   (run it with `nice`: the machine is shared)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as a worker
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from bench_sweep import LARGE_SPEC, kernel_only, load_average, simple_limit  # noqa: E402
from large_data import write_large_dataset  # noqa: E402

from engine.design import auto_chunk  # noqa: E402
from engine.spec import Spec  # noqa: E402

NO_FIELD_WEIGHTS = """[[factor]]
kind = "weight"
level = "field"
range = 0.25
"""


def spec_for(tmp: Path, data: Path, kind: str, n: int, field_weights: bool = True) -> Spec:
    text = LARGE_SPEC.format(kind=kind, n=n, store="full", data=data)
    if not field_weights:
        text = text.replace(NO_FIELD_WEIGHTS, "")
    p = tmp / f"{data.name}-{kind}-{n}-{int(field_weights)}.toml"
    p.write_text(text)
    return Spec.from_toml(p)


def measure(tmp: Path, cities: int, fields: int, indicators: int, kind: str = "montecarlo",
            field_weights: bool = True, quick: bool = False) -> None:
    data = tmp / f"d{cities}x{fields}x{indicators}"
    if not data.exists():
        write_large_dataset(data, cities, fields, indicators, groups=5)
    probe = spec_for(tmp, data, "montecarlo", 64)
    chunk = auto_chunk(probe, cities, fields)
    if kind == "sobol":
        n = 8 if quick else 32
        spec = spec_for(tmp, data, "sobol", n, field_weights)
        total = spec.n_scenarios
    else:
        total = max(256, (2 if quick else 6) * chunk)
        spec = spec_for(tmp, data, "montecarlo", total, field_weights)
    limit = simple_limit(spec)
    rate_k = kernel_only(spec)
    rate_t = kernel_only(spec, summarise=True)
    size = cities * (fields + 1) * 6
    what = f"{kind} D = {len(spec.groups):2}" if kind == "sobol" else f"montecarlo ({len(spec.groups)} factors)"
    print(f"{cities:6} {fields:6} {indicators:10}  {what:24} {total:7,}  {limit:9,.0f}  {rate_k:9,.0f} "
          f"({rate_k / limit:4.0%})  {rate_t:9,.0f} ({rate_t / limit:4.0%})  {size / 1e3:8,.0f} kB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and scenarios (a check of the bench)")
    quick = ap.parse_args().quick
    tmp = Path(tempfile.mkdtemp(prefix="rankstab-bench-scaling-"))
    print(f"SYNTHETIC data; one core; scenarios/s (share of the simple limit)   ({load_average()})")
    print(f"{'cities':>6} {'fields':>6} {'indicators':>10}  {'design':24} {'n':>7}  {'limit':>9}  "
          f"{'kernel':>16}  {'kernel + summaries':>16}  {'store/scen.':>11}")
    try:
        sizes = [(250, 20, 50), (2000, 20, 50)] if quick else [
            (250, 20, 50), (500, 20, 50), (1000, 20, 50), (2000, 20, 50),  # cities
            (2000, 5, 50), (2000, 10, 50),  # fields
            (2000, 20, 10), (2000, 20, 25)]  # indicators
        for c, f, i in sizes:
            measure(tmp, c, f, i, quick=quick)
        for c in ([250] if quick else [500, 2000]):  # factors: Sobol with and without the field weights
            for fw in (False, True):
                measure(tmp, c, 20, 50, "sobol", fw, quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"({load_average()})")


if __name__ == "__main__":
    main()
