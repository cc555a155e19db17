"""Spearman + Kendall tau-b of every scenario's ranking against the nominal one: engine.stats.rankcorr
(O(cities log cities), Knight's algorithm) against the former pairwise O(cities^2) loop, one core.

Inputs are competition ranks (int16) of synthetic perturbed scores, as a sweep chunk holds them.
Prints time per (scenario, field) and the speed ratio at 45 and 2000 cities;
run with `python bench/bench_rankcorr.py [--quick]`.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from engine.kernel.ranking import competition_rank
from engine.stats.rankcorr import rank_correlations


@numba.njit(cache=True, nogil=True)
def pairwise(ranks, nominal):  # pragma: no cover - compiled
    """The former engine.summary._correlations: Pearson on the ranks as given, tau-b over all pairs."""
    n_s, n_c, n_f = ranks.shape
    spearman = np.ones((n_s, n_f))
    kendall = np.ones((n_s, n_f))
    for f in range(n_f):
        nom = nominal[:, f]
        nc = nom - nom.mean()
        ss_n = (nc * nc).sum()
        n_tied_nom = 0
        for i in range(n_c):
            for j in range(i + 1, n_c):
                n_tied_nom += nom[i] != nom[j]
        for s in range(n_s):
            r = ranks[s, :, f]
            mean = 0.0
            for i in range(n_c):
                mean += r[i]
            mean /= n_c
            num = ss_r = 0.0
            for i in range(n_c):
                d = r[i] - mean
                num += d * nc[i]
                ss_r += d * d
            if ss_r * ss_n > 0:
                spearman[s, f] = num / np.sqrt(ss_r * ss_n)
            concord = 0
            untied = 0
            for i in range(n_c):
                for j in range(i + 1, n_c):
                    a = np.sign(np.int64(r[i]) - np.int64(r[j]))
                    concord += a * np.sign(nom[i] - nom[j])
                    untied += a != 0
            if untied * n_tied_nom > 0:
                kendall[s, f] = concord / np.sqrt(np.float64(untied) * n_tied_nom)
    return spearman, kendall


def chunk(n_c: int, n_f: int, n_s: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic competition ranks (scenario, city, field) int16 and nominal ranks (city, field) int64."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(1, 100, (1, n_c, n_f)).astype(np.float32)
    scores = np.round(base + rng.normal(0, 3, (n_s, n_c, n_f)), 1).astype(np.float32)  # some ties
    return competition_rank(scores, axis=1), competition_rank(base, axis=1)[0].astype(np.int64)


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(n_c: int, n_f: int, n_new: int, n_old: int, repeat: int) -> None:
    ranks, nominal = chunk(n_c, n_f, n_new)
    t_new = best(lambda: rank_correlations(ranks, nominal, 1.0), repeat) / (n_new * n_f)
    old = ranks[:n_old]
    t_old = best(lambda: pairwise(old, nominal), max(1, repeat // 3)) / (n_old * n_f)
    _, kt_new = rank_correlations(old, nominal, 1.0)
    _, kt_old = pairwise(old, nominal)
    print(f"{n_c:5d} cities x {n_f} fields: O(n log n) {t_new * 1e6:9.2f} us, pairwise {t_old * 1e6:10.2f} us "
          f"per scenario and field -> {t_old / t_new:7.1f}x faster (tau-b max |diff| "
          f"{np.abs(kt_new - kt_old).max():.1e})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.parse_args()
    quick = ap.parse_args().quick
    numba.set_num_threads(1)
    measure(45, 8, 4096, 4096, 3 if quick else 10)
    measure(2000, 21, 16 if quick else 64, 2 if quick else 4, 2 if quick else 3)


if __name__ == "__main__":
    main()
