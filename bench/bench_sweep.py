"""End-to-end sweep benchmark of the default spec (GTII, Sobol with second order, 16 factors).

Measured in one run (the machine is shared: compare the ratios):
* wall time of `rankstab run` (CLI start, cluster start, sweep, store, analysis) at N = 2^14: the target;
* on one core, without Dask or zarr: the kernel-only rate (design + decode + scores + ranks) and the rate of
  the whole task compute (kernel + the summaries the analysis needs, Sobol sums included);
* the same sweep on an up-and-running 1-worker cluster: the Dask + zarr overhead over that task compute,
  split by the same job run in-process (no Dask) into zarr + analysis finish and Dask;
* throughput with 1 and 2 workers;
* peak RSS of the client and of each worker at N = 2^12, 2^14, 2^16.

``--large``: the large size instead (2000 cities x 20 fields x 50 indicators in 5 groups, a SYNTHETIC
seeded dataset from bench/large_data.py; 27 factors: 5 group weights, 20 field weights, normalisation,
aggregation): the simple limit (one matmul + one argsort over cities, one core), the kernel-only and
kernel + summaries rates, the Dask + zarr + summary overhead, `rankstab run` with 2 workers (Monte Carlo
n = 2048 and 16384, where the fixed costs are amortised, store full and summary; Sobol N = 128 first order,
store full and summary), peak RSS at Monte Carlo n = 1024, 4096, 16384 and for the Sobol runs, and the
marginal rate (n = 4096 -> 16384). ``--large-quick``: the same at small n.

Usage: python bench/bench_sweep.py [--quick | --large | --large-quick]   (run it with `nice`: the machine
is shared)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # "one core": one BLAS thread,
    os.environ.setdefault(_var, "1")  # as in the workers (set before NumPy loads its BLAS)

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import xarray as xr  # noqa: E402

from engine.design import auto_chunk, decode, design_rows, weight_schemes  # noqa: E402
from engine.kernel import Prepared, evaluate  # noqa: E402
from engine.pipeline import run  # noqa: E402
from engine.spec import Spec  # noqa: E402
from engine.stats.summary import Plan, Summary, rank_deviation  # noqa: E402
from engine.sweep.tasks import with_given  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "scenarios" / "gtii-2019.toml"


def spec_file(tmp: Path, n: int) -> Path:
    p = tmp / f"gtii-{n}.toml"
    p.write_text(SPEC.read_text().replace("n = 16384", f"n = {n}"))
    return p


def kernel_only(spec: Spec, summarise: bool = False) -> float:
    """Scenarios per second on one core, chunk by chunk as the tasks do: design rows, decode, scores and
    ranks, and with ``summarise`` also the task's summary (histograms, correlations, Sobol sums, given-data
    sums); after one untimed chunk (the prepared data and compiled kernels: a worker's start-up)."""
    prep = Prepared(spec.ds)
    schemes = weight_schemes(spec, prep.tree)
    chunk = auto_chunk(spec, spec.ds.sizes["city"], spec.ds.sizes["field"])
    summary = None
    if summarise:
        tmp = Path(tempfile.mkdtemp(prefix="rankstab-bench-plan-"))
        run(spec, out=tmp / "nominal.zarr", synchronous=True, max_chunks=0)  # a store for the plan only
        plan = Plan.from_store(xr.open_zarr(tmp / "nominal.zarr"))  # same chunking as below
        schemes_w = weight_schemes(spec, prep.tree, prep.data(spec.nominal.prep))  # as the workers (tasks.py)
        summary = Summary(with_given(plan, spec, prep, schemes_w))  # given-data sums of Monte Carlo runs too
        shutil.rmtree(tmp, ignore_errors=True)
    evaluate(prep, decode(spec, prep.tree, design_rows(spec, 0, chunk), schemes).batch)  # untimed: the data
    t = time.perf_counter()  # prepared for every normalisation, numba's caches loaded (a worker's start-up)
    for k, a in enumerate(range(0, spec.n_scenarios, chunk)):
        b = min(a + chunk, spec.n_scenarios)
        x = design_rows(spec, a, b)
        dec = decode(spec, prep.tree, x, schemes)
        scores, ranks = evaluate(prep, dec.batch)
        if summary is not None:  # what a sweep task adds (engine.sweep.tasks.compute_chunk)
            dev = rank_deviation(ranks, summary.plan.nominal_rank)
            summary.add(k, scores, ranks, dev, dec.batch.weights, design=x)
    if summary is not None:
        summary.hist.counts  # rows still held are counted before the task's summary leaves  # noqa: B018
    return spec.n_scenarios / (time.perf_counter() - t)


def warm_sweep(spec_path: Path, out: Path, workers: int, warm_up: Path | None = None) -> float:
    """Seconds of `engine.run` (sweep, store, analysis) on an up-and-running cluster of ``workers``, after a
    warm-up run (of ``warm_up``, a smaller spec, if given)."""
    from engine.clusters import connect

    with connect("local", workers=workers) as client:
        run(warm_up or spec_path, out=out, client=client, overwrite=True)  # warm-up: imports, numba caches
        t = time.perf_counter()
        run(spec_path, out=out, client=client, overwrite=True)
        return time.perf_counter() - t


def cli_run(spec: Path, out: Path, workers: int, analyze: bool) -> tuple[float, str]:
    t, res = _cli(spec, out, workers, analyze)
    return t, res.stdout


def _cli(spec: Path, out: Path, workers: int, analyze: bool) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--workers", str(workers),
           "--quiet", "--no-report", "--overwrite"] + ([] if analyze else ["--no-analyze"])
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t, res


def cli_phases(spec: Path, out: Path, workers: int) -> tuple[float, float, float]:
    """`rankstab run` (analysis, no report): its wall time, the time it reports itself (from after its
    imports to the analysis written; the rest is Python's start, the imports, the printed summary table and
    the cluster's shutdown) and the sweep phase (first task submitted to last chunk stored, from the last
    --quiet progress line; between the two: reading and checking the data, creating the store, waiting for
    the workers, gathering the summaries and the analysis)."""
    import re

    t, res = _cli(spec, out, workers, analyze=True)
    own = float(re.search(r"analysed in ([0-9.]+) s", res.stdout).group(1))
    sweep = [float(v) for v in re.findall(r"elapsed +([0-9.]+)s", res.stderr)]
    return t, own, sweep[-1] if sweep else float("nan")


def load_average() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def peak_rss(spec_path: Path, out: Path) -> tuple[float, list[float], float]:
    """Peak RSS (MB) of the client process and of each worker for one run (a fresh process), and its
    wall time (s)."""
    code = f"""
import json
from engine.analysis import write_summary
from engine.clusters import connect
from engine.sweep import sweep

def hwm():  # VmHWM (kB): unlike ru_maxrss, not inherited across fork + exec from the bench process
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))

if __name__ == "__main__":
    import time
    t = time.perf_counter()
    with connect("local", workers=2) as c:
        sweep({str(spec_path)!r}, out={str(out)!r}, client=c, overwrite=True, analyse=write_summary)  # as `rankstab run`
        w = c.run(hwm)
    print(json.dumps([hwm(), list(w.values()), time.perf_counter() - t]))
"""
    script = out.parent / "peak_rss.py"  # a file, not -c: the local workers' forkserver imports the main module
    script.write_text(code)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{spec_path.name}: the run failed:\n{res.stderr[-3000:]}")
    import json

    client, workers, wall = json.loads(res.stdout.strip().splitlines()[-1])
    return client / 1024, [w / 1024 for w in workers], wall


LARGE_SPEC = """# SYNTHETIC benchmark spec: random data from bench/large_data.py (describes no real city)
name = "large-{kind}-{n}-{store}"
store = "{store}"
[dataset]
path = "{data}/values.csv"
meta = "{data}/meta.toml"
[nominal]
normalisation = "minmax:1,100"
aggregation = "arithmetic"
[design]
kind = "{kind}"
n = {n}
seed = 1
second_order = false
chunk = 0
[[factor]]
kind = "weight"
level = "group"
range = 0.5
[[factor]]
kind = "weight"
level = "field"
range = 0.25
[[factor]]
name = "normalisation"
kind = "normalisation"
choices = ["minmax:1,100", "distance_to_leader", "rank"]
[[factor]]
name = "aggregation"
kind = "aggregation"
choices = ["arithmetic", "geometric"]
"""


def import_seconds(repeat: int = 3) -> float:
    """Median seconds of starting Python and importing what `rankstab run` imports."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import engine.pipeline"], check=True)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def large_spec(tmp: Path, kind: str, n: int, store: str = "full") -> Path:
    p = tmp / f"large-{kind}-{n}-{store}.toml"
    p.write_text(LARGE_SPEC.format(kind=kind, n=n, store=store, data=tmp / "data"))
    return p


def simple_limit(spec: Spec, repeat: int = 5) -> float:
    """Scenarios per second on one core of one matmul (city*field, indicator) @ (indicator, 64 scenarios)
    plus one argsort over cities of its output (the issue's "simple limit"; median of ``repeat``)."""
    import numpy as np

    prep = Prepared(spec.ds)
    x = prep.data(spec.nominal.prep)
    n_c, n_f, n_i = x.shape
    x = np.ascontiguousarray(x.reshape(n_c * n_f, n_i))
    w = np.random.default_rng(0).random((n_i, 64))
    times = []
    for _ in range(repeat + 1):
        t = time.perf_counter()
        y = x @ w
        np.argsort(y.reshape(n_c, n_f * 64).T, axis=1)
        times.append(time.perf_counter() - t)
    return 64 / float(np.median(times[1:]))


def large(quick: bool) -> None:
    """The large size (see the module docstring): ratios from one run."""
    from large_data import write_large_dataset

    tmp = Path(tempfile.mkdtemp(prefix="rankstab-bench-large-"))
    try:
        write_large_dataset(tmp / "data")
        n_mc, n_sobol, scan = (256, 16, (256, 512, 1024)) if quick else (2048, 128, (1024, 4096, 16384))
        mc = large_spec(tmp, "montecarlo", n_mc)
        spec = Spec.from_toml(mc)
        s = spec.ds.sizes
        print(f"large size (SYNTHETIC data): {s['city']} cities x {s['field']} fields x {s['indicator']} indicators,"
              f" {len(spec.factors)} factors; Monte Carlo n = {n_mc}   ({load_average()})")
        limit = simple_limit(spec)
        print(f"  simple limit, one core (one matmul + one argsort over cities): {limit:8,.0f} scenarios/s; "
              f"2 cores: {2 * limit:8,.0f}")
        rate_k = kernel_only(spec)
        rate_t = kernel_only(spec, summarise=True)
        print(f"  one core, no Dask, no zarr: kernel only {rate_k:8,.0f} scenarios/s ({rate_k / limit:.0%} of the "
              f"limit); kernel + summaries {rate_t:8,.0f} scenarios/s")
        t_warm = warm_sweep(mc, tmp / "w.zarr", 1, warm_up=large_spec(tmp, "montecarlo", 64))
        t_sync = time.perf_counter()
        run(mc, out=tmp / "y.zarr", synchronous=True, overwrite=True)
        t_sync = time.perf_counter() - t_sync
        shutil.rmtree(tmp / "y.zarr", ignore_errors=True)
        shutil.rmtree(tmp / "w.zarr", ignore_errors=True)
        print(f"  warm 1-worker cluster, sweep + store + analysis: {t_warm:.1f} s; the same job in this process: "
              f"{t_sync:.1f} s")
        print(f"  Dask + zarr + summary overhead over the kernel alone on one core: "
              f"{t_warm * rate_k / n_mc - 1:+.0%} (summaries {rate_k / rate_t - 1:+.0%}, zarr writes + store + "
              f"analysis finish {(t_sync - n_mc / rate_t) * rate_k / n_mc:+.0%}, Dask {t_warm / t_sync - 1:+.0%})")
        imports = import_seconds()
        print(f"  starting Python and importing the engine (`python -c 'import engine.pipeline'`): {imports:.1f} s")
        for kind, n in (("montecarlo", n_mc), ("montecarlo", scan[-1]), ("sobol", n_sobol)):  # fixed costs, then
            # amortised at the largest n of the memory scan
            for store in ("full", "summary"):
                p = large_spec(tmp, kind, n, store)
                total = n if kind == "montecarlo" else n * (len(spec.factors) + 2)
                t, own, swept = cli_phases(p, tmp / "s.zarr", 2)
                print(f"  rankstab run, 2 workers, {kind} n = {n} ({total:,} scenarios), store = {store}: {t:6.1f} s, "
                      f"{total / t:7,.0f} scenarios/s = {total / t / (2 * limit):.0%} of 2 x the simple limit\n"
                      f"      (Python start, imports, summary table, cluster shutdown {t - own:.1f} s; data, checks, store, workers, "
                      f"summaries, analysis {own - swept:.1f} s; sweep {swept:.1f} s: {total / swept:,.0f} scenarios/s = "
                      f"{total / swept / (2 * limit):.0%})   ({load_average()})")
                shutil.rmtree(tmp / "s.zarr", ignore_errors=True)
        print("  peak RSS (MB): client, workers (one fresh `rankstab run`-equivalent process each)")
        runs = [("montecarlo", n, "full") for n in scan] + [("sobol", n_sobol, st) for st in ("full", "summary")]
        walls = {}
        for kind, n, store in runs:
            p = large_spec(tmp, kind, n, store)
            client, workers, wall = peak_rss(p, tmp / "m.zarr")
            total = n if kind == "montecarlo" else n * (len(spec.factors) + 2)
            walls[(kind, n)] = wall
            print(f"    {kind:10} n = {n:6} ({total:>7,} scenarios, store {store:7}): client "
                  f"{client:6.0f}   workers " + " ".join(f"{w:6.0f}" for w in workers) + f"   ({wall:.0f} s)")
            shutil.rmtree(tmp / "m.zarr", ignore_errors=True)
        a, b = scan[-2], scan[-1]  # the marginal rate: what each further scenario costs, start-up excluded
        rate = (b - a) / (walls[("montecarlo", b)] - walls[("montecarlo", a)])
        print(f"  marginal rate of a run (Monte Carlo n = {a} -> {b}, 2 workers, store full, analysis): "
              f"{rate:,.0f} scenarios/s = {rate / (2 * limit):.0%} of 2 x the simple limit   ({load_average()})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="N = 2^12 only, no memory scan")
    ap.add_argument("--large", action="store_true", help="the large size (2000 x 20 x 50) instead of GTII")
    ap.add_argument("--large-quick", action="store_true", help="the large size at small n (a check of the bench)")
    args = ap.parse_args()
    if args.large or args.large_quick:
        large(args.large_quick)
        print(f"(bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="rankstab-bench-"))
    try:
        n = 2**12 if args.quick else 2**14
        path = spec_file(tmp, n)
        spec = Spec.from_toml(path)
        print(f"default spec at N = {n}: {spec.n_scenarios:,} scenarios, {len(spec.factors)} factors")
        rate_k = kernel_only(spec)
        rate_t = kernel_only(spec, summarise=True)
        print(f"  one core, no Dask, no zarr: kernel only {rate_k:10,.0f} scenarios/s; "
              f"kernel + summaries {rate_t:10,.0f} scenarios/s")
        t_warm = warm_sweep(path, tmp / "w.zarr", 1)
        print(f"  warm 1-worker cluster, sweep + store + analysis: {t_warm:.2f} s, "
              f"{spec.n_scenarios / t_warm:10,.0f} scenarios/s")
        t_sync = time.perf_counter()
        run(path, out=tmp / "y.zarr", synchronous=True, overwrite=True)  # the same job in this process
        t_sync = time.perf_counter() - t_sync
        print(f"  the same job in this process (no Dask, zarr written, analysis finished): {t_sync:.2f} s")
        print(f"  Dask + zarr overhead over the same task compute on one core: {t_warm * rate_t / spec.n_scenarios - 1:+.0%}"
              f" (over the kernel alone: {t_warm * rate_k / spec.n_scenarios - 1:+.0%}); of which zarr writes, "
              f"store and analysis finish {t_sync * rate_t / spec.n_scenarios - 1:+.0%}, Dask {t_warm / t_sync - 1:+.0%}")
        times = {}
        for workers in (1, 2):
            times[workers], _ = cli_run(path, tmp / "s.zarr", workers, analyze=True)
            print(f"  rankstab run, {workers} worker(s), with analysis (CLI start included): {times[workers]:6.1f} s "
                  f"{spec.n_scenarios / times[workers]:10,.0f} scenarios/s")
        t_na, _ = cli_run(path, tmp / "s.zarr", 2, analyze=False)
        print(f"  rankstab run, 2 workers, --no-analyze: {t_na:.1f} s")
        print(f"  scaling 1 -> 2 workers (whole command): {times[1] / times[2]:.2f}x")
        if not args.quick:
            print("peak RSS (MB): client, workers")
            for k in (12, 14, 16):
                p = spec_file(tmp, 2**k)
                client, workers, _ = peak_rss(p, tmp / f"m{k}.zarr")
                print(f"  N = 2^{k} ({Spec.from_toml(p).n_scenarios:>9,} scenarios): client {client:7.0f}   workers "
                      + " ".join(f"{w:6.0f}" for w in workers))
                shutil.rmtree(tmp / f"m{k}.zarr", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"(bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
