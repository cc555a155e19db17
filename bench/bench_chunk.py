"""Where one chunk's time goes on a worker: each step of a sweep task, timed in this process on one core.

    OMP_NUM_THREADS=1 python bench/bench_chunk.py [SPEC] [--chunk 8704] [--repeat 6]

For the default spec (GTII, Sobol' with second order) it prints, per chunk of ``--chunk`` scenarios: the
design rows and their decoding, the kernel (scores, then ranks), the summaries without Sobol' sums, the
Sobol' sums (the difference between a summary with and one without them), and zstd level 1 of the scores
and ranks (what the store's codec does to them). Shares of the total and the rate on one core follow.
Medians over ``--repeat`` chunks (the machine is shared: compare shares, not seconds, across runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as a worker

import numcodecs  # noqa: E402
import numpy as np  # noqa: E402

from engine.design import decode, design_rows, weight_schemes  # noqa: E402
from engine.kernel import Prepared, competition_rank, scores_only  # noqa: E402
from engine.spec import Spec  # noqa: E402
from engine.stats.summary import Plan, Summary, rank_deviation  # noqa: E402
from engine.sweep.layout import nominal  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default="gtii-2019")
    ap.add_argument("--chunk", type=int, default=8704, help="scenarios per chunk (whole Saltelli blocks)")
    ap.add_argument("--repeat", type=int, default=6)
    args = ap.parse_args()
    spec = Spec.from_toml(args.spec)
    prep = Prepared(spec.ds)
    schemes = weight_schemes(spec, prep.tree, prep.data(spec.nominal.prep))
    nom = nominal(spec, prep, schemes)
    d, block = spec.design, spec.block_size
    size = max(block, args.chunk // block * block)
    n_chunks = min(args.repeat + 1, spec.n_scenarios // size)
    plan = Plan(nom.rank.astype(np.int64), nom.score.astype(np.float32), d.kind, n_chunks * size, size, block,
                n_chunks * size // block, len(spec.groups), bool(d.second_order), int(d.num_resamples), 1,
                second_order_conf=bool(d.second_order_conf))
    zstd = numcodecs.Zstd(level=1)
    times: dict[str, list[float]] = {}

    def timed(name, f, *a):
        t = time.perf_counter()
        out = f(*a)
        times.setdefault(name, []).append(time.perf_counter() - t)
        return out

    plain, full = Summary(plan, sobol=False), Summary(plan, sobol=True)
    for k in range(n_chunks):  # chunk 0 warms up (compiled kernels, caches): not counted
        a, b = k * size, (k + 1) * size
        x = timed("design rows", design_rows, spec, a, b)
        dec = timed("decode", decode, spec, prep.tree, x, schemes)
        scores = timed("kernel: scores", scores_only, prep, dec.batch)
        ranks = timed("kernel: ranks", competition_rank, scores, 1)
        dev = rank_deviation(ranks, plan.nominal_rank)
        timed("summaries (no Sobol' sums)", plain.add, k, scores, ranks, dev, dec.batch.weights, x)
        timed("summaries with Sobol' sums", full.add, k, scores, ranks, dev, dec.batch.weights, x)
        timed("zstd: scores", zstd.encode, np.ascontiguousarray(scores))
        timed("zstd: ranks", zstd.encode, np.ascontiguousarray(ranks))
    med = {name: statistics.median(v[1:]) for name, v in times.items()}
    med["Sobol' sums"] = max(0.0, med.pop("summaries with Sobol' sums") - med["summaries (no Sobol' sums)"])
    total = sum(med.values())
    print(f"{spec.name}: chunks of {size:,} scenarios, median of {n_chunks - 1}, one core")
    for name, t in sorted(med.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28} {1e3 * t:8.1f} ms  {t / total:6.1%}")
    print(f"  {'total':28} {1e3 * total:8.1f} ms  -> {size / total:,.0f} scenarios/s on one core")


if __name__ == "__main__":
    main()
