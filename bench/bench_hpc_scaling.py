"""What a sweep sends over the network, and what grows with the number of workers: the numbers behind the
scaling model of cluster/README.md.

Measured on the default spec (GTII, Sobol with second order, 16 factors, auto chunking) at a reduced N:
* per chunk task: the bytes the client sends (the task: function, Job, chunk index), the bytes the worker
  sends back (its rank histogram), the bytes it writes to the store (compressed, on the shared filesystem);
* per worker, once at the end: the summary head the client receives, the Sobol' sums that stay on the
  worker and the part of them it sends to the others in the reduce-scatter, the finished indices;
* with W = 1, 2, 4 real `dask worker` processes attached to a real `dask scheduler` (as on a cluster):
  wall time, the client's and the scheduler's peak memory, the number of tasks of the final gathering;
* the scheduler's cost per task (time, memory), from many no-op tasks held at once, and with it the final
  gathering extrapolated to 1000 workers (the number of its tasks is counted as the code makes them).

Sizes are pickled sizes (what Dask's protocol sends, within a few hundred bytes of framing).
Usage: python bench/bench_hpc_scaling.py [--n 1024] [--chunk 0] [--workers 1 2 4] [--tasks 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from engine.sweep.gather import FAN_IN, MAX_PARTS, gathering_tasks

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "scenarios" / "gtii-2019.toml"


def _hwm_mib(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _size(obj) -> int:
    return len(pickle.dumps(obj, protocol=5))


def per_chunk_and_worker(spec_path: Path, tmp: Path) -> dict:
    """The payloads, measured by running the worker-side functions in this process on a real store."""
    import numpy as np

    from engine.pipeline import run
    from engine.sweep.gather import _head, _slice
    from engine.sweep.job import store_job
    from engine.sweep.tasks import collect_export, compute_chunk

    out = tmp / "sizes.zarr"
    run(spec_path, out=out, synchronous=True, max_chunks=0)
    job = store_job(out)

    def du() -> int:
        return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())

    empty = du()
    k, hist = compute_chunk(job, 0)
    store_bytes = du() - empty
    a, b = job.bounds(0)
    export = collect_export(job)
    head = _head(export)
    sums = export["sums"]
    return {"chunk_scenarios": b - a, "n_chunks": job.n_chunks, "task": _size((compute_chunk, job, k)),
            "result": _size((k, hist)), "hist_shape": tuple(np.shape(hist)), "store_chunk": store_bytes,
            "head": _size(head), "sums": _size(sums), "slice_of_2": _size(_slice(export, 0, 2)),
            "spec_text": len(job.spec_text)}


@contextmanager
def _cluster(tmp: Path, workers: int):
    """A real `dask scheduler` and `workers` single-threaded `dask worker` processes; yields (client, scheduler pid)."""
    from distributed import Client

    sched_file = tmp / f"sched-{workers}-{time.monotonic_ns()}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_LOGGING__DISTRIBUTED": "error",
           "MALLOC_TRIM_THRESHOLD_": "134217728", "MALLOC_MMAP_THRESHOLD_": "33554432"}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        while not sched_file.exists():
            time.sleep(0.1)
        procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                    str(sched_file), "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                                    "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for _ in range(workers)]
        with Client(scheduler_file=str(sched_file), timeout=60) as client:
            client.wait_for_workers(workers, timeout=300)
            yield client, procs[0].pid
    finally:
        for p in procs:
            p.kill()
            p.wait()


def cluster_run(spec_path: Path, tmp: Path, workers: int) -> dict:
    """The sweep, from this process, on a real scheduler with `workers` single-threaded worker processes."""
    from engine.pipeline import run

    with _cluster(tmp, workers) as (client, sched_pid):
        before = _hwm_mib()
        t0 = time.perf_counter()
        run(spec_path, out=tmp / f"run-{workers}.zarr", client=client)
        wall = time.perf_counter() - t0
        return {"wall": wall, "client_hwm": _hwm_mib(), "client_before": before,
                "scheduler_hwm": _hwm_mib(sched_pid), "gather_tasks": gathering_tasks(workers)}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scheduler_per_task(tmp: Path, n_tasks: int) -> dict:
    """The scheduler's cost per task, the term that grows fastest with the workers (the W x W slices of the
    final reduce-scatter): ``n_tasks`` no-op tasks on 2 workers, submitted at once and all held, as the
    slices are. Wall time per task (scheduler and client overhead) and scheduler memory per held task."""
    with _cluster(tmp, 2) as (client, sched_pid):
        client.gather(client.map(abs, range(-50, 50), pure=False))  # warm up
        rss0 = _rss_mib(sched_pid)
        t0 = time.perf_counter()
        futures = client.map(abs, range(n_tasks), pure=False)
        client.gather(futures)
        wall = time.perf_counter() - t0
        rss1 = _rss_mib(sched_pid)
        del futures
        return {"tasks": n_tasks, "us_per_task": wall / n_tasks * 1e6, "kib_per_task": (rss1 - rss0) * 1024 / n_tasks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="Sobol' base samples (default 1024: 34,816 scenarios)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--chunk", type=int, default=0, help="scenarios per task (default 0: auto, ~16 MB of results)")
    ap.add_argument("--tasks", type=int, default=20000, help="no-op tasks for the scheduler's cost per task "
                    "(default 20000; 0: skip)")
    ap.add_argument("--model-workers", type=int, default=1000, help="extrapolate the final gathering to this many "
                    "workers (default 1000)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one cluster run in a fresh client process
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(cluster_run(Path(args.spec), Path(args.spec).parent, args.one)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="rankstab-bench-hpc-"))
    try:
        spec_path = tmp / "gtii.toml"
        text = SPEC.read_text().replace("n = 16384", f"n = {args.n}")
        spec_path.write_text(text.replace("chunk = 0 ", f"chunk = {args.chunk} ") if args.chunk else text)
        s = per_chunk_and_worker(spec_path, tmp)
        print(f"GTII, N = {args.n}: {s['n_chunks']} chunks of {s['chunk_scenarios']:,} scenarios")
        print(f"per chunk task: client sends {s['task']:,} B (the spec text is {s['spec_text']:,} B of it); "
              f"the worker returns {s['result']:,} B (rank histogram {s['hist_shape']}); "
              f"it writes {s['store_chunk'] / 2**20:.2f} MiB (compressed) to the store")
        print(f"per worker at the end: summary head to the client {s['head']:,} B; Sobol' sums kept on the worker "
              f"{s['sums'] / 2**20:.2f} MiB, of which it sends (W-1)/W to the other workers "
              f"(one of 2 slices: {s['slice_of_2'] / 2**20:.2f} MiB)")
        print(f"{'workers':>7} {'wall s':>7} {'client peak MiB':>16} {'(before run)':>13} {'scheduler peak MiB':>19} "
              f"{'gather tasks':>13}")
        for w in args.workers:  # each in a fresh process, so that the client's peak memory is its own
            res = subprocess.run([sys.executable, __file__, "--one", str(w), "--spec", str(spec_path)],
                                 capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{w:>7} {r['wall']:>7.1f} {r['client_hwm']:>16.0f} {r['client_before']:>13.0f} "
                  f"{r['scheduler_hwm']:>19.0f} "
                  f"{r['gather_tasks']:>13}")
        if args.tasks:
            c = scheduler_per_task(tmp, args.tasks)
            print(f"scheduler cost per task ({c['tasks']:,} no-op tasks on 2 workers, all held): "
                  f"{c['us_per_task']:.0f} us, {c['kib_per_task']:.1f} KiB")
            w = args.model_workers
            gather = gathering_tasks(w)
            print(f"model at W = {w:,} workers: the final gathering has {gather:,} tasks (2W, a fold of the "
                  f"sums {FAN_IN} at a time down to {MAX_PARTS} holders, their reduce-scatter) = "
                  f"{gather * c['us_per_task'] / 1e6:,.0f} s of scheduler time and "
                  f"{gather * c['kib_per_task'] / 2**20:,.1f} GiB of scheduler memory at the cost above; "
                  f"each worker sends its {s['sums'] / 2**20:.2f} MiB of sums once (a fold leader receives "
                  f"{FAN_IN - 1} x that per level); the client receives {w:,} heads "
                  f"= {w * s['head'] / 2**20:,.1f} MiB, merged one at a time; per chunk nothing depends on W")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
