"""Kernel throughput (scenarios per second, one core) against this machine's limits, measured in one run.

Limits: a NumPy matmul of the same shape (data (city*field, indicator) @ weights (indicator, scenario))
plus one argsort over cities, and a memory copy of the output bytes. Sizes: GTII (45 x 7 x 5) and large
(2000 x 20 x 50). Prints ratios; run with `python bench/bench_kernel.py [--quick]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import xarray as xr

from engine.kernel import Batch, Prepared, evaluate
from engine.kernel.ranking import competition_rank
from engine.methods import Prep, parse_option


def synthetic(n_c: int, n_f: int, n_i: int, n_g: int, seed: int = 0) -> xr.Dataset:
    """A random complete dataset (synthetic, for benchmarking only)."""
    rng = np.random.default_rng(seed)
    groups = [f"g{g}" for g in range(n_g)]
    return xr.Dataset(
        {"value": (("city", "field", "indicator"), rng.uniform(1, 100, (n_c, n_f, n_i)))},
        coords={"city": [f"c{c}" for c in range(n_c)], "field": [f"f{f}" for f in range(n_f)],
                "indicator": [f"i{i}" for i in range(n_i)],
                "indicator_parent": ("indicator", [groups[i % n_g] for i in range(n_i)]),
                "direction": ("indicator", np.ones(n_i, int)), "indicator_weight": ("indicator", np.ones(n_i)),
                "indicator_denominator": ("indicator", [""] * n_i), "group": groups,
                "group_parent": ("group", [""] * n_g), "group_weight": ("group", np.ones(n_g)),
                "field_weight": ("field", np.ones(n_f))},
        attrs={"name": "synthetic", "city_groupings": ""})


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(label: str, ds: xr.Dataset, n_s: int, repeat: int) -> None:
    prep = Prepared(ds)
    rng = np.random.default_rng(1)
    w = prep.tree.renormalise(rng.uniform(0.5, 1.5, (n_s, len(prep.tree.nodes))))
    p = Prep(parse_option("normalisation", "minmax:1,100"), parse_option("outlier", "none"),
             parse_option("imputation", "none"))
    batch = Batch([p], np.zeros(n_s, int), ["arithmetic"], np.zeros(n_s, int), w)
    mixed = Batch([p, Prep(parse_option("normalisation", "rank"), p.outlier, p.imputation)],
                  rng.integers(0, 2, n_s), ["arithmetic", "geometric", "harmonic"], rng.integers(0, 3, n_s), w)
    n_c, n_f, n_i = ds["value"].shape
    x = prep.data(p).reshape(n_c * n_f, n_i)
    wt = np.ascontiguousarray(w[:, :n_i].T)
    out = np.empty((n_c * n_f, n_s))
    scores = np.empty((n_s, n_c, n_f + 1), np.float32)
    sc32 = np.random.default_rng(2).random((n_s, n_f + 1, n_c), dtype=np.float32)
    src = np.ones(n_s * n_c * (n_f + 1) * 6, np.uint8)
    dst = np.empty_like(src)

    t_kernel = best(lambda: evaluate(prep, batch), repeat)
    t_mixed = best(lambda: evaluate(prep, mixed), repeat)
    t_rank = best(lambda: competition_rank(scores, axis=1), repeat)
    t_matmul = best(lambda: np.matmul(x, wt, out=out), repeat)
    t_argsort = best(lambda: np.argsort(sc32, axis=-1), repeat)
    t_copy = best(lambda: np.copyto(dst, src), repeat)
    base = t_matmul + t_argsort
    print(f"{label}: {n_c} cities x {n_f} fields x {n_i} indicators, batch {n_s} scenarios")
    print(f"  kernel (scores + ranks, arithmetic) {n_s / t_kernel:12,.0f} scenarios/s")
    print(f"  kernel, mixed normalisation x aggregation {n_s / t_mixed:6,.0f} scenarios/s")
    print(f"  of which ranking alone            {n_s / t_rank:12,.0f} scenarios/s")
    print(f"  limit: matmul + one argsort      {n_s / base:12,.0f} scenarios/s  -> kernel is {t_kernel / base:.2f}x it")
    print(f"  limit: memory copy of the output {n_s / t_copy:12,.0f} scenarios/s  -> kernel is {t_kernel / t_copy:.1f}x it")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import numba

    numba.set_num_threads(1)
    measure("GTII size", synthetic(45, 7, 5, 2), 4096, 5 if args.quick else 20)
    if args.quick:
        measure("large (quick)", synthetic(500, 20, 50, 5), 64, 2)
    else:
        measure("large size", synthetic(2000, 20, 50, 5), 256, 3)


if __name__ == "__main__":
    main()
