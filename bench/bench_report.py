"""Report benchmark: what `rankstab report` of a finished store costs, and which figures cost it.

Measured in one run (the machine is shared: compare the ratios):
* wall time of the command `rankstab report STORE` (start-up and imports included), median of 3;
* in-process: loading the store and analysis, drawing every figure on one core and on every core (the
  default), rendering the page;
* CPU time of each figure on one core, costliest first (drawn in page order: a text already drawn by an
  earlier figure costs nothing; every measurement starts with an empty text cache).

Usage: python bench/bench_report.py [STORE]   (default results/gtii-2019.zarr: make it once with
`rankstab run --no-report`)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.reporting.canvas import TextCachingRenderer, png
from engine.reporting.context import Context
from engine.reporting.drawing import draw_all
from engine.reporting.figures import plan
from engine.reporting.page import render

ROOT = Path(__file__).resolve().parents[1]


def command_seconds(store: Path, out: Path, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "engine.cli", "report", str(store), "--out", str(out)], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", nargs="?", default=str(ROOT / "results" / "gtii-2019.zarr"))
    store = Path(ap.parse_args().store)
    if not store.exists():
        sys.exit(f"{store}: no such store; make it with `rankstab run --no-report` first")
    with tempfile.TemporaryDirectory(prefix="rankstab-bench-report-") as tmp:
        cmd = command_seconds(store, Path(tmp) / "r.html")
    t0 = time.perf_counter()
    ctx = Context.load(store)  # analysed already by the commands above
    load = time.perf_counter() - t0
    plans = plan(ctx)
    TextCachingRenderer._cache.clear()  # every measurement starts with no text drawn, as a report does
    t0, c0 = time.perf_counter(), time.process_time()
    serial = draw_all(ctx, plans, workers=1)
    serial_wall, serial_cpu = time.perf_counter() - t0, time.process_time() - c0
    TextCachingRenderer._cache.clear()
    t0 = time.perf_counter()
    parallel = draw_all(ctx, plans)
    parallel_wall = time.perf_counter() - t0
    per_process: dict[int, float] = {}
    for f in parallel.values():
        per_process[f.pid] = per_process.get(f.pid, 0.0) + f.cpu
    assert [f.png for f in serial.values()] == [f.png for f in parallel.values()]
    t0 = time.perf_counter()
    render(ctx, parallel, 0.0)
    page = time.perf_counter() - t0
    per_figure = []
    TextCachingRenderer._cache.clear()
    for p in plans:
        c0 = time.process_time()
        png(p.draw(ctx, *p.args))
        per_figure.append((time.process_time() - c0, p.key))
    print(f"store: {store} ({ctx.a.sizes['city']} cities, {len(ctx.fields)} fields shown, {len(plans)} figures)")
    print(f"rankstab report (whole command, median of 3): {cmd:.2f} s")
    print(f"load {load:.2f} s | figures on one core {serial_wall:.2f} s wall ({serial_cpu:.2f} s CPU) | "
          f"on every core {parallel_wall:.2f} s wall | page {page:.2f} s")
    busiest = max(per_process.values())
    print(f"figures: every core / one core = {parallel_wall / serial_wall:.2f}; target 2 s: "
          f"{'met' if parallel_wall <= 2 else 'not met'} ({parallel_wall / 2:.2f} of it)")
    print(f"figures on every core, CPU per drawing process: "
          f"{', '.join(f'{v:.2f}' for v in sorted(per_process.values(), reverse=True))} s (the busiest: "
          f"{busiest:.2f} s, the wall time on idle cores without the pool's start-up; load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print("CPU per figure (one core): " + ", ".join(f"{k} {s:.2f}" for s, k in sorted(per_figure, reverse=True)))


if __name__ == "__main__":
    main()
