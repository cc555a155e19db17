"""What the given-data indices (engine.stats.given) cost a Monte Carlo run, as ratios to the work a run does
anyway: the GTII spec as a Monte Carlo run of N scenarios (45 cities x 8 fields, 16 factors), in one
process, CPU seconds (``time.process_time``: the machine is shared).

* per scenario: design + decode + scores + ranks, the summary without and with the given-data sums;
* once per run: finishing the indices (point estimates + Poisson bootstrap of every output x factor).

    python bench/bench_given.py [--n 16384] [--resamples 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.design import decode, design_rows, weight_schemes  # noqa: E402
from engine.kernel import Prepared, evaluate  # noqa: E402
from engine.spec import Spec  # noqa: E402
from engine.stats.given_run import make_config  # noqa: E402
from engine.stats.summary import Plan, Summary, rank_deviation  # noqa: E402
from engine.sweep.layout import nominal  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2**14)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--resamples", type=int, default=100)
    a = ap.parse_args()
    base = Spec.from_toml("gtii-2019")
    text = base.text.replace('kind = "sobol"', 'kind = "montecarlo"').replace("n = 16384", f"n = {a.n}")
    spec = Spec.from_text(text.replace("second_order = true", "second_order = false"), source="bench", ds=base.ds)
    prep = Prepared(spec.ds)
    schemes = weight_schemes(spec, prep.tree, prep.data(spec.nominal.prep))
    nom = nominal(spec, prep, schemes)
    t = time.process_time()
    config = make_config(spec, prep, schemes, nom.rank.astype(np.int64), nom.score)
    t_config = time.process_time() - t
    plan = Plan(nom.rank.astype(np.int64), nom.score.astype(np.float32), "montecarlo", a.n, a.chunk, 1, a.n,
                len(spec.groups), False, a.resamples, 1)
    plain, given = Summary(plan), Summary(replace(plan, given=config))
    Summary(plan).add(0, *evaluate(prep, decode(spec, prep.tree, design_rows(spec, 0, a.chunk), schemes).batch))
    t_eval = t_plain = t_given = 0.0
    for k in range(-(-a.n // a.chunk)):
        lo, hi = plan.bounds(k)
        t = time.process_time()
        x = design_rows(spec, lo, hi)
        scores, ranks = evaluate(prep, decode(spec, prep.tree, x, schemes).batch)
        dev = rank_deviation(ranks, plan.nominal_rank)
        t_eval += time.process_time() - t
        t = time.process_time()
        plain.add(k, scores, ranks, dev)
        t_plain += time.process_time() - t
        t = time.process_time()
        given.add(k, scores, ranks, dev, design=x)
        t_given += time.process_time() - t
    t = time.process_time()
    res = given.given.result(a.resamples, 0.95, 1)
    t_finish = time.process_time() - t
    tables = sum(s.table.nbytes + s.binsum.nbytes for s in given.given.sums.values())
    print(f"GTII as Monte Carlo, N = {a.n:,}, 16 factors, bins {sorted(set(config.n_bins))}, "
          f"{a.resamples} resamples; CPU seconds")
    print(f"  configuration (pilot of the first rows): {t_config:.2f} s")
    print(f"  per-scenario work: evaluate {t_eval:.2f} s, summary {t_plain:.2f} s, summary + given {t_given:.2f} s "
          f"(given adds {(t_given - t_plain) / t_eval:.1f}x the evaluation)")
    print(f"  finishing the given indices: {t_finish:.2f} s = {t_finish / t_eval:.1f}x the evaluation")
    print(f"  given-data state per summary: {tables / 2**20:.1f} MiB")
    print(f"  mean S1_given of the overall ranks by factor: "
          f"{dict(zip([f.name for f in spec.factors], np.round(res['rank']['S1'].reshape(16, 45, 8)[:, :, -1].mean(1), 3), strict=True))}")


if __name__ == "__main__":
    main()
