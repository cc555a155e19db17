"""End-to-end sweep benchmark of the default spec (GTII, Sobol with second order, 16 factors).

Measured in one run (the machine is shared: compare the ratios):
* wall time of `rankstab run` (CLI start, cluster start, sweep, store, analysis) at N = 2^14;
* the same run's kernel-only rate on one core (design + decode + scores + ranks, no Dask, no zarr), and the
  Dask + zarr overhead relative to it;
* throughput with 1 and 2 workers;
* peak RSS of the client and of each worker at N = 2^12, 2^14, 2^16 (must not grow with N).

Usage: python bench/bench_sweep.py [--quick]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.design import decode, design_rows, weight_schemes
from engine.kernel import Prepared, evaluate
from engine.spec import Spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "scenarios" / "gtii-2019.toml"


def spec_file(tmp: Path, n: int) -> Path:
    p = tmp / f"gtii-{n}.toml"
    p.write_text(SPEC.read_text().replace("n = 16384", f"n = {n}"))
    return p


def kernel_only(spec: Spec) -> float:
    """Scenarios per second on one core: design rows, decode, scores and ranks, chunk by chunk."""
    prep = Prepared(spec.ds)
    schemes = weight_schemes(spec, prep.tree)
    step = spec.block_size * 54
    t = time.perf_counter()
    for a in range(0, spec.n_scenarios, step):
        b = min(a + step, spec.n_scenarios)
        dec = decode(spec, prep.tree, design_rows(spec, a, b), schemes)
        evaluate(prep, dec.batch)
    return spec.n_scenarios / (time.perf_counter() - t)


def cli_run(spec: Path, out: Path, workers: int, analyze: bool) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--workers", str(workers),
           "--quiet", "--no-report", "--overwrite"] + ([] if analyze else ["--no-analyze"])
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, res.stdout


def peak_rss(spec_path: Path, out: Path) -> tuple[float, list[float]]:
    """Peak RSS (MB) of the client process and of each worker for one run (a fresh process)."""
    code = f"""
import resource, json
from engine.cluster import connect
from engine.sweep import run
with connect("local", workers=2) as c:
    run({str(spec_path)!r}, out={str(out)!r}, client=c, overwrite=True)
    w = c.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, list(w.values())]))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    import json

    client, workers = json.loads(res.stdout.strip().splitlines()[-1])
    return client / 1024, [w / 1024 for w in workers]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="N = 2^12 only, no memory scan")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rankstab-bench-"))
    try:
        n = 2**12 if args.quick else 2**14
        path = spec_file(tmp, n)
        spec = Spec.from_toml(path)
        print(f"default spec at N = {n}: {spec.n_scenarios:,} scenarios, {len(spec.factors)} factors")
        rate1 = kernel_only(spec)
        print(f"  kernel only, one core:          {rate1:10,.0f} scenarios/s")
        for workers in (1, 2):
            t, _ = cli_run(path, tmp / "s.zarr", workers, analyze=False)
            print(f"  rankstab run, {workers} worker(s), no analysis: {t:6.1f} s  {spec.n_scenarios / t:10,.0f} scenarios/s")
            if workers == 1:
                t1 = t
        t_all, out = cli_run(path, tmp / "s.zarr", 2, analyze=True)
        print(f"  rankstab run, 2 workers, with analysis (CLI start included): {t_all:.1f} s")
        print(f"  Dask + zarr overhead vs kernel-only on one core (1 worker): {t1 * rate1 / spec.n_scenarios - 1:+.0%}")
        print(f"  scaling 1 -> 2 workers: {t1 / t:.2f}x")
        if not args.quick:
            print("peak RSS (MB): client, workers")
            for k in (12, 14, 16):
                p = spec_file(tmp, 2**k)
                client, workers = peak_rss(p, tmp / f"m{k}.zarr")
                print(f"  N = 2^{k} ({Spec.from_toml(p).n_scenarios:>9,} scenarios): client {client:7.0f}   workers "
                      + " ".join(f"{w:6.0f}" for w in workers))
                shutil.rmtree(tmp / f"m{k}.zarr", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"(bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
