"""Loading and validating a large tidy CSV (``engine.load_dataset``) against ``pandas.read_csv`` of the
same file, measured in one run (best of a few, warm page cache, warm imports).

The data is the seeded synthetic dataset of ``bench/large_data.py`` (default 2000 cities x 20 fields x
50 indicators = 2M rows), written to a temporary folder. Run with
`python bench/bench_load.py [--cities N --fields N --indicators N] [--repeat R]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from large_data import write_large_dataset  # noqa: E402

from engine.data.load import load_dataset  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cities", type=int, default=2000)
    ap.add_argument("--fields", type=int, default=20)
    ap.add_argument("--indicators", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        meta = write_large_dataset(tmp, a.cities, a.fields, a.indicators)
        csv = Path(tmp) / "values.csv"
        load_dataset("gtii-2019")  # warm imports and code paths
        t_pandas = best(lambda: pd.read_csv(csv), a.repeat)
        t_load = best(lambda: load_dataset(meta.parent), a.repeat)
        rows = a.cities * a.fields * a.indicators
        print(f"{rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB): pandas.read_csv {t_pandas:.2f} s, "
              f"load_dataset (read + validate) {t_load:.2f} s -> {t_load / t_pandas:.2f}x pandas.read_csv "
              f"(target <= 3x; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())})")


if __name__ == "__main__":
    main()
