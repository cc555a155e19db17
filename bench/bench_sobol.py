"""Benchmark engine.stats.sobol.sobol_indices against SALib's sobol.analyze looped over outputs.

GTII size: N = 2^14 base samples, D = 16 factors, second order (N*(2D+2) = 557,056 rows),
M = 720 outputs (45 cities × 8 fields × {rank 1..45, score}), 100 bootstrap resamples.
SALib is timed on a few outputs in the same run and extrapolated to all of them.

    python bench/bench_sobol.py [--quick] [--salib-outputs K] [--repeat R]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from SALib.analyze import sobol as salib_analyze
from SALib.sample import sobol as salib_sample

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.stats.sobol import sobol_indices, sobol_problem  # noqa: E402


def synthesise(X: np.ndarray, cities: int, fields: int, seed: int = 0) -> np.ndarray:
    """(rows, 2*cities*fields): ranks (1 = best) then scores of a smooth nonlinear index model."""
    rng = np.random.default_rng(seed)
    D = X.shape[1]
    base = rng.normal(size=(1, cities, fields))
    W1, W2 = rng.normal(size=(D, 24)), rng.normal(size=(24, cities * fields)) * 0.15
    u = rng.normal(size=(1, cities, fields)) * 0.3
    Y = np.empty((len(X), 2 * cities * fields))
    for lo in range(0, len(X), 65536):
        x = X[lo : lo + 65536] - 0.5
        score = base + (np.tanh(x @ W1) @ W2).reshape(-1, cities, fields) + (x[:, 0] * x[:, 1])[:, None, None] * u
        ranks = np.argsort(np.argsort(-score, axis=1), axis=1) + 1
        Y[lo : lo + 65536] = np.concatenate([ranks.reshape(len(x), -1), score.reshape(len(x), -1)], axis=1)
    return Y


def best_time(fn, repeat: int) -> tuple[float, dict]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 2^10, D = 8: a smoke run")
    ap.add_argument("--salib-outputs", type=int, default=4, help="outputs SALib is timed on")
    ap.add_argument("--repeat", type=int, default=3, help="runs of ours (best is reported)")
    args = ap.parse_args()
    N, D = (2**10, 8) if args.quick else (2**14, 16)
    cities, fields, R, seed = 45, 8, 100, 7

    problem = sobol_problem([f"f{i}" for i in range(D)])
    t = time.perf_counter()
    X = salib_sample.sample(problem, N, calc_second_order=True, seed=1)
    Y = synthesise(X, cities, fields)
    M = Y.shape[1]
    print(f"N={N} D={D} rows={len(Y)} outputs={M} resamples={R}  (design + outputs: {time.perf_counter() - t:.1f} s)")

    sobol_indices(Y[: (2 * D + 2) * 256, :4], D, second_order=True)  # compile / load the numba cache
    t_so, ours = best_time(lambda: sobol_indices(Y, D, second_order=True, num_resamples=R, seed=seed), args.repeat)
    t_fo, ours_fo = best_time(lambda: sobol_indices(Y, D, design_second_order=True, num_resamples=R, seed=seed),
                              args.repeat)
    print(f"ours, S1+ST+S2, all {M} outputs: {t_so:.2f} s")
    print(f"ours, S1+ST only (same design), all {M} outputs: {t_fo:.2f} s")

    K = args.salib_outputs
    picks = np.linspace(0, M - 1, K).astype(int)  # ranks and scores
    first_rows = np.ones(len(Y) // (2 * D + 2) * (2 * D + 2), bool).reshape(-1, 2 * D + 2)
    first_rows[:, D + 1 : 2 * D + 1] = False  # SALib refuses S1/ST-only analysis of a second-order design
    s_so = s_fo = 0.0
    dev_point = dev_conf = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in picks:
            y = np.ascontiguousarray(Y[:, m])
            t = time.perf_counter()
            ref = salib_analyze.analyze(problem, y, calc_second_order=True, num_resamples=R, seed=seed)
            s_so += time.perf_counter() - t
            t = time.perf_counter()
            salib_analyze.analyze(problem, y[first_rows.ravel()], calc_second_order=False, num_resamples=R, seed=seed)
            s_fo += time.perf_counter() - t
            for key in ("S1", "ST", "S2"):
                dev_point = max(dev_point, np.nanmax(np.abs(ours[key][..., m] - ref[key])))
            for key in ("S1_conf", "ST_conf", "S2_conf"):
                dev_conf = max(dev_conf, np.nanmax(np.abs(ours[key][..., m] / ref[key] - 1)))
    per_so, per_fo = s_so / K, s_fo / K
    print(f"SALib, S1+ST+S2: {per_so:.2f} s per output (mean of {K}) -> {per_so * M:.0f} s for {M} outputs; "
          f"speed-up {per_so * M / t_so:.0f}x")
    print(f"SALib, S1+ST only: {per_fo:.2f} s per output -> {per_fo * M:.0f} s for {M} outputs; "
          f"speed-up {per_fo * M / t_fo:.0f}x")
    print(f"agreement on the {K} outputs (same resamples): point max |diff| {dev_point:.1e}, "
          f"conf max relative diff {dev_conf:.1e} (float32 bootstrap sums)")
    print(f"constant outputs: {int(ours['constant'].sum())}; S1/ST-only run equals the full run's S1: "
          f"{np.allclose(ours_fo['S1'], ours['S1'], atol=1e-12)}")


if __name__ == "__main__":
    main()
