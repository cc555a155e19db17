#!/usr/bin/env python3
"""Generate the SYNTHETIC ``gtii-2019`` demo dataset (values.csv, cities.csv).

The 2019 China Hard-Tech White Paper publishes the GTII-City Index only as each
field's TOP10 (city + score) and the TOP15 composite; no indicator data exist.
This script *reconstructs* plausible 0-100 indicator values, value(city, field,
indicator), such that the nominal methodology

    field score = 0.5 * mean(ORG, TALENT, CAPITAL) + 0.5 * mean(KNOWLEDGE, COMMERCIAL)
    overall     = mean of the 7 field scores

reproduces every published TOP10 score (to 0.01) and order, keeps every other city
below the field's threshold, reproduces the TOP15 order (and its scores wherever
arithmetically possible) and the stated TOP10 means and input/output sub-means. Everything
not pinned by the publication (free field scores, input/output split, indicator
spread) is drawn from a seeded numpy Generator, so the output is deterministic.

Usage: ``python generate.py [OUTPUT_DIR]`` (default: the directory of this file).
The written CSV is re-read and every target is verified; a failure raises.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

SEED = 2019
FIELDS = ("IT", "CHIP", "ENERGY", "BIO", "AERO", "MFG", "MAT")
INPUT = ("ORG", "TALENT", "CAPITAL")
OUTPUT = ("KNOWLEDGE", "COMMERCIAL")
INDICATORS = INPUT + OUTPUT

# 附录 表2 (white paper lines 2725-2747), appendix order: city_en, city_zh, country_en, iso3.
# Hong Kong and Taipei are listed under 中国 there and kept so (iso3 CHN).
CITIES: tuple[tuple[str, str, str, str], ...] = (
    ("Sydney", "悉尼", "Australia", "AUS"),
    ("Melbourne", "墨尔本", "Australia", "AUS"),
    ("Berlin", "柏林", "Germany", "DEU"),
    ("Frankfurt", "法兰克福", "Germany", "DEU"),
    ("Dusseldorf", "杜塞尔多夫", "Germany", "DEU"),
    ("Munich", "慕尼黑", "Germany", "DEU"),
    ("Hamburg", "汉堡", "Germany", "DEU"),
    ("Moscow", "莫斯科", "Russia", "RUS"),
    ("Paris", "巴黎", "France", "FRA"),
    ("Lyon", "里昂", "France", "FRA"),
    ("Seoul", "首尔", "South Korea", "KOR"),
    ("Toronto", "多伦多", "Canada", "CAN"),
    ("Montreal", "蒙特利尔", "Canada", "CAN"),
    ("Vancouver", "温哥华", "Canada", "CAN"),
    ("Boston", "波士顿", "United States", "USA"),
    ("Chicago", "芝加哥", "United States", "USA"),
    ("Detroit", "底特律", "United States", "USA"),
    ("Houston", "休斯顿", "United States", "USA"),
    ("Los Angeles", "洛杉矶", "United States", "USA"),
    ("Philadelphia", "费城", "United States", "USA"),
    ("Washington DC", "华盛顿", "United States", "USA"),
    ("New York", "纽约", "United States", "USA"),
    ("San Francisco", "旧金山", "United States", "USA"),
    ("Seattle", "西雅图", "United States", "USA"),
    ("Tokyo", "东京", "Japan", "JPN"),
    ("Kyoto", "京都", "Japan", "JPN"),
    ("Nagoya", "名古屋", "Japan", "JPN"),
    ("Tel Aviv", "特拉维夫", "Israel", "ISR"),
    ("Mumbai", "孟买", "India", "IND"),
    ("New Delhi", "新德里", "India", "IND"),
    ("Bangalore", "班加罗尔", "India", "IND"),
    ("London", "伦敦", "United Kingdom", "GBR"),
    ("Edinburgh", "爱丁堡", "United Kingdom", "GBR"),
    ("Manchester", "曼彻斯特", "United Kingdom", "GBR"),
    ("Bristol", "布里斯托尔", "United Kingdom", "GBR"),
    ("Beijing", "北京", "China", "CHN"),
    ("Chengdu", "成都", "China", "CHN"),
    ("Guangzhou", "广州", "China", "CHN"),
    ("Hangzhou", "杭州", "China", "CHN"),
    ("Hong Kong", "香港", "China", "CHN"),
    ("Taipei", "台北", "China", "CHN"),
    ("Tianjin", "天津", "China", "CHN"),
    ("Shanghai", "上海", "China", "CHN"),
    ("Shenzhen", "深圳", "China", "CHN"),
    ("Xi'an", "西安", "China", "CHN"),
)

# Published 2019 field TOP10 in rank order (lines 2453, 2474, 2495, 2515, 2535, 2555, 2576).
TOP10_TEXT = {
    "IT": "New York 82.03; Tokyo 81.75; Beijing 78.02; Shanghai 68.97; Paris 62.80; London 62.73; "
    "Los Angeles 59.75; Guangzhou 59.52; Hangzhou 58.00; Seoul 57.96",
    "CHIP": "Tokyo 78.65; Beijing 75.63; Shanghai 70.15; New York 68.04; Paris 67.47; London 64.32; "
    "Guangzhou 61.59; Kyoto 59.85; Seoul 59.39; Taipei 59.08",
    "ENERGY": "Tokyo 80.31; Beijing 77.88; New York 66.71; Shanghai 66.44; Paris 63.64; Guangzhou 61.54; "
    "Shenzhen 58.63; Chengdu 58.22; Seoul 57.87; London 57.38",
    "BIO": "Tokyo 81.59; New York 81.55; Shanghai 76.3; Beijing 73.55; London 69.77; Seoul 67.96; "
    "Paris 67.57; Guangzhou 66.29; Boston 64.75; Chengdu 64.57",
    # Guangzhou is printed 51.44 (out of order); the stated TOP10 mean 64.17 implies 57.77: see below.
    "AERO": "Beijing 80.08; Tokyo 68.74; Chicago 68.09; Paris 65.64; Shanghai 64.68; New York 63.13; "
    "Xi'an 62.80; Guangzhou 57.77; London 56.88; Tianjin 53.89",
    "MFG": "Tokyo 79.72; Beijing 76.90; Shanghai 71.71; New York 67.54; London 66.62; Guangzhou 64.26; "
    "Seoul 63.18; Hangzhou 60.68; Paris 60.59; Tianjin 59.05",
    "MAT": "Tokyo 79.08; Beijing 78.17; Shanghai 71.36; New York 66.78; Hangzhou 60.54; Guangzhou 60.36; "
    "Kyoto 59.47; Seoul 57.89; Paris 56.54; Tianjin 55.19",
}
AERO_GUANGZHOU_PRINTED = 51.44
AERO_GUANGZHOU_USED = 57.77  # misprint decision (source README item 16)

# Published 2019 TOP15 composite (城市篇 表1, lines 2388-2402).
TOP15_TEXT = (
    "Tokyo 78.39; Beijing 77.17; New York 70.83; Shanghai 69.42; Paris 63.47; London 61.62; "
    "Guangzhou 61.00; Seoul 58.10; Hangzhou 56.50; Chengdu 54.67; Los Angeles 54.12; Tianjin 52.68; "
    "Kyoto 51.58; Xi'an 51.16; Shenzhen 51.12"
)

# Stated 2019 TOP10 means (lines 2457-2580); MFG's 67.02 needs a small shift (see field_scores).
TOP10_MEAN = {
    "IT": "67.15",
    "CHIP": "66.42",
    "ENERGY": "64.86",
    "BIO": "71.39",
    "AERO": "64.17",
    "MFG": "67.02",
    "MAT": "64.54",
}
# Stated 2019 TOP10 input/output sub-means (lines 2457, 2478, 2519, 2539), as printed (precision matters).
SUBMEANS = {
    ("IT", "output"): "65.78",
    ("CHIP", "input"): "67.56",
    ("CHIP", "output"): "65.28",
    ("BIO", "output"): "71.5",
    ("AERO", "input"): "61.16",
}

# Illustrative, hand-set priors for the 30 cities outside the TOP15 (rough overall level; NOT data).
STRENGTH = {
    "San Francisco": 48,
    "Boston": 46,
    "Taipei": 45,
    "Seattle": 44,
    "Chicago": 43,
    "Munich": 44,
    "Nagoya": 43,
    "Washington DC": 42,
    "Hong Kong": 41,
    "Toronto": 41,
    "Berlin": 40,
    "Moscow": 39,
    "Houston": 39,
    "Philadelphia": 39,
    "Tel Aviv": 38,
    "Detroit": 37,
    "Sydney": 37,
    "Frankfurt": 36,
    "Hamburg": 35,
    "Melbourne": 35,
    "Montreal": 35,
    "Bangalore": 33,
    "Lyon": 32,
    "Vancouver": 32,
    "New Delhi": 30,
    "Mumbai": 29,
    "Dusseldorf": 29,
    "Manchester": 28,
    "Edinburgh": 26,
    "Bristol": 24,
}
# Illustrative field affinities (points added to the prior of free field scores; NOT data).
AFFINITY = {
    "San Francisco": {"IT": 7, "CHIP": 4, "BIO": 3},
    "Seattle": {"AERO": 7, "IT": 4},
    "Houston": {"ENERGY": 7, "AERO": 4},
    "Detroit": {"MFG": 8, "MAT": 3},
    "Munich": {"MFG": 5, "AERO": 3},
    "Hamburg": {"AERO": 5},
    "Taipei": {"IT": 3, "MFG": 2},
    "Nagoya": {"MFG": 7, "AERO": 3, "MAT": 2},
    "Bangalore": {"IT": 7},
    "Tel Aviv": {"IT": 6, "CHIP": 3},
    "Moscow": {"AERO": 5, "ENERGY": 3},
    "Toronto": {"IT": 3, "BIO": 2},
    "Montreal": {"AERO": 5},
    "Lyon": {"BIO": 4},
    "Dusseldorf": {"MAT": 4},
    "Bristol": {"AERO": 5},
    "Edinburgh": {"BIO": 4},
    "Philadelphia": {"BIO": 5},
    "Boston": {"IT": 2},
    "Washington DC": {"AERO": 3, "BIO": 2},
    "Vancouver": {"ENERGY": 3},
    "Melbourne": {"BIO": 2},
    "Sydney": {"BIO": 2},
    "Chicago": {"MFG": 3},
    "Shenzhen": {"IT": 5, "CHIP": 5},
    "Xi'an": {"ENERGY": 2},
    "Los Angeles": {"BIO": 3},
    "Chengdu": {"IT": 2},
    "Tianjin": {"MAT": 2},
    "Kyoto": {"BIO": 3},
}

FIXED_SLACK = 0.003  # max shift of a published field score (keeps it rounding to the published value)
MEAN_MARGIN = 0.0005  # TOP10 means are kept this far inside the rounding interval of the stated mean
MIN_MARGIN = 0.5  # every non-TOP10 field score is at least this far below the field's threshold
OTHERS_MAX_OVERALL = 50.0  # overall of the 30 non-TOP15 cities stays below this (15th: 51.12)
BOUNDS = (1.0, 99.0)  # indicator values are kept inside this range


def city_code(name: str) -> str:
    """ASCII code of a city name: apostrophes dropped, spaces to underscores."""
    return name.replace("'", "").replace(" ", "_")


def parse_ranked(text: str) -> list[tuple[str, str]]:
    """Split ``"City 1.23; Other City 4.5"`` into ``[(city, "1.23"), ...]`` (score kept as printed)."""
    return [tuple(item.strip().rsplit(" ", 1)) for item in text.split(";")]  # type: ignore[misc]


NAMES = [c[0] for c in CITIES]
IDX = {name: i for i, name in enumerate(NAMES)}
TOP10 = {f: [(c, float(s)) for c, s in parse_ranked(t)] for f, t in TOP10_TEXT.items()}
TOP15 = [(c, float(s)) for c, s in parse_ranked(TOP15_TEXT)]
THRESHOLD = {f: ranked[-1][1] for f, ranked in TOP10.items()}


def water_fill(prior: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float) -> np.ndarray:
    """Return ``clip(prior + t, lo, hi)`` with the scalar ``t`` chosen so that the sum equals ``total``."""
    if not lo.sum() <= total <= hi.sum():
        raise ValueError(f"infeasible fill: need {total:.4f}, range [{lo.sum():.4f}, {hi.sum():.4f}]")
    a, b = -200.0, 200.0
    for _ in range(200):
        t = 0.5 * (a + b)
        a, b = (t, b) if np.clip(prior + t, lo, hi).sum() < total else (a, t)
    return np.clip(prior + 0.5 * (a + b), lo, hi)


def composite_targets() -> tuple[dict[str, float], dict[str, float]]:
    """Per TOP15 city: overall target and shift applied to its published field scores.

    A city in all seven TOP10s has no free field: its published scores may move by at most
    ``FIXED_SLACK`` (still rounding to the published value). If that reaches the published
    composite the shift is used, otherwise (infeasible) no shift and the overall is simply the
    mean of its seven published field scores.
    """
    target, shift = {}, {}
    for city, score in TOP15:
        fixed = [dict(TOP10[f]).get(city) for f in FIELDS]
        if any(v is None for v in fixed):
            target[city], shift[city] = score, 0.0
            continue
        mean = float(np.mean(fixed))
        delta = float(np.clip(score - mean, -FIXED_SLACK, FIXED_SLACK))
        if abs(mean + delta - score) > 0.004:
            delta = 0.0
        target[city], shift[city] = mean + delta, delta
    return target, shift


def field_scores(rng: np.random.Generator) -> np.ndarray:
    """Field scores (45 x 7): published TOP10 cells fixed, the rest drawn below the thresholds."""
    n, k = len(NAMES), len(FIELDS)
    score = np.full((n, k), np.nan)
    target, shift = composite_targets()
    for j, f in enumerate(FIELDS):
        for city, s in TOP10[f]:
            score[IDX[city], j] = s + shift.get(city, 0.0)
    for j, f in enumerate(FIELDS):  # keep the TOP10 mean rounding to the stated mean
        rows = [IDX[c] for c, _ in TOP10[f]]
        lo, hi = interval(TOP10_MEAN[f], MEAN_MARGIN)
        fix = np.clip(score[rows, j].mean(), lo, hi) - score[rows, j].mean()
        if fix:  # spread over TOP10 cities that have a free field (their overall absorbs it)
            movable = [i for i in rows if np.isnan(score[i]).any()]
            step = fix * len(rows) / len(movable)
            if abs(step) > FIXED_SLACK:
                raise ValueError(f"{f}: cannot reach the stated TOP10 mean {TOP10_MEAN[f]}")
            score[movable, j] += step
    thr = np.array([THRESHOLD[f] for f in FIELDS])
    aff = np.array([[AFFINITY.get(c, {}).get(f, 0.0) for f in FIELDS] for c in NAMES])
    top15 = [c for c, _ in TOP15]

    for city in top15:  # free cells of TOP15 cities: sum pinned by the published composite
        i = IDX[city]
        free = np.isnan(score[i])
        if not free.any():
            continue
        need = 7 * target[city] - np.nansum(score[i])
        prior = need / free.sum() + aff[i, free] + rng.normal(0.0, 3.0, free.sum())
        hi = thr[free] - (MIN_MARGIN if free.sum() == 1 else rng.uniform(MIN_MARGIN, 3.0, free.sum()))
        score[i, free] = water_fill(prior, np.full(free.sum(), 5.0), hi, need)

    for city in NAMES:  # the other 30 cities: hand-set prior level + affinity + noise
        if city in top15:
            continue
        i = IDX[city]
        free = np.isnan(score[i])
        raw = STRENGTH[city] + aff[i] + rng.normal(0.0, 5.0, k)
        cap = thr - rng.uniform(1.0, 6.0, k)
        vals = np.maximum(np.minimum(raw, cap), 5.0 + rng.uniform(0.0, 5.0, k))
        score[i, free] = vals[free]
        max_sum = 7 * (OTHERS_MAX_OVERALL - rng.uniform(0.0, 1.5))
        excess = np.nansum(score[i]) - max_sum
        if excess > 0:
            score[i, free] -= excess / free.sum()
    return score


def interval(printed: str, margin: float = 1e-6) -> tuple[float, float]:
    """Values that round to ``printed`` at its printed precision, as a closed interval shrunk by ``margin``."""
    half = 0.5 * 10.0 ** -len(printed.split(".")[1]) - margin
    return float(printed) - half, float(printed) + half


def split_input_output(rng: np.random.Generator, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split each field score into input and output group means (score = (in + out) / 2).

    The difference in - out is a city bias plus noise; for fields with stated TOP10
    sub-means it is shifted over the TOP10 so the TOP10 mean of in (and of out) hits the
    middle of the interval compatible with every stated value.
    """
    diff = rng.normal(0.0, 3.0, (len(NAMES), 1)) + rng.normal(0.0, 4.0, score.shape)
    for j, f in enumerate(FIELDS):
        rows = [IDX[c] for c, _ in TOP10[f]]
        m = score[rows, j].mean()
        lo, hi = -np.inf, np.inf
        if (f, "input") in SUBMEANS:
            a, b = interval(SUBMEANS[f, "input"])
            lo, hi = max(lo, a), min(hi, b)
        if (f, "output") in SUBMEANS:
            a, b = interval(SUBMEANS[f, "output"])
            lo, hi = max(lo, 2 * m - b), min(hi, 2 * m - a)
        if np.isinf(lo) and np.isinf(hi):
            continue
        if not lo < hi:
            raise ValueError(f"{f}: stated sub-means incompatible with the TOP10 mean {m:.4f}")
        in_target = 0.5 * (lo + hi)
        diff[rows, j] += 2 * (in_target - m) - diff[rows, j].mean()
    return score + diff / 2, score - diff / 2


def spread(mean: np.ndarray, dev: np.ndarray) -> np.ndarray:
    """``mean[..., None] + s * dev`` with zero-sum ``dev`` scaled down (s <= 1) to stay inside BOUNDS."""
    lo, hi = BOUNDS
    m = mean[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(dev > 0, (hi - m) / dev, np.where(dev < 0, (lo - m) / dev, np.inf))
    s = np.minimum(1.0, room.min(axis=-1, keepdims=True))
    return m + s * dev


def indicator_values(rng: np.random.Generator, inp: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Indicator values (45 x 7 x 5) whose group means are exactly ``inp`` and ``out``.

    TALENT (universities) and COMMERCIAL (GDP) are pulled towards a city-level level, so they
    vary less across fields than ORG, CAPITAL and KNOWLEDGE.
    """
    if inp.min() < BOUNDS[0] or out.min() < BOUNDS[0] or max(inp.max(), out.max()) > BOUNDS[1]:
        raise ValueError("group mean outside BOUNDS")
    n, k = inp.shape
    level = (inp + out).mean(axis=1, keepdims=True) / 2
    talent = level + rng.normal(0.0, 8.0, (n, 1))
    capital = level + rng.normal(0.0, 8.0, (n, 1))
    gdp = level + rng.normal(0.0, 8.0, (n, 1))
    dev_in = np.stack(
        [
            rng.normal(0.0, 6.0, (n, k)),
            0.6 * (talent - inp) + rng.normal(0.0, 3.0, (n, k)),
            0.4 * (capital - inp) + rng.normal(0.0, 5.0, (n, k)),
        ],
        axis=-1,
    )
    dev_in -= dev_in.mean(axis=-1, keepdims=True)
    g = 0.6 * (gdp - out) + rng.normal(0.0, 3.0, (n, k))
    dev_out = np.stack([-g, g], axis=-1)
    return np.concatenate([spread(inp, dev_in), spread(out, dev_out)], axis=-1)


def generate(seed: int = SEED) -> np.ndarray:
    """The full value cube (city x field x indicator), in CITIES / FIELDS / INDICATORS order."""
    rng = np.random.default_rng(seed)
    score = field_scores(rng)
    inp, out = split_input_output(rng, score)
    return indicator_values(rng, inp, out)


def write(outdir: Path, values: np.ndarray) -> None:
    """Write values.csv (tidy long, 6 decimals) and cities.csv into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    with open(outdir / "values.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["city", "field", "indicator", "value"])
        for i, city in enumerate(NAMES):
            for j, f in enumerate(FIELDS):
                for k, ind in enumerate(INDICATORS):
                    w.writerow([city_code(city), f, ind, f"{values[i, j, k]:.6f}"])
    with open(outdir / "cities.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["city", "name", "country", "name_zh", "iso3"])
        for name, zh, country, iso3 in CITIES:
            w.writerow([city_code(name), name, country, zh, iso3])


def read_values(path: Path) -> np.ndarray:
    """Re-read values.csv into the (city, field, indicator) cube."""
    cube = np.full((len(NAMES), len(FIELDS), len(INDICATORS)), np.nan)
    codes = {city_code(c): i for i, c in enumerate(NAMES)}
    with open(path, encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            cube[codes[r["city"]], FIELDS.index(r["field"]), INDICATORS.index(r["indicator"])] = float(
                r["value"]
            )
    return cube


def nominal(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Input mean, output mean, field score (city x field) and overall (city) of the nominal method."""
    inp, out = cube[..., :3].mean(axis=-1), cube[..., 3:].mean(axis=-1)
    field = 0.5 * inp + 0.5 * out
    return inp, out, field, field.mean(axis=1)


def verify(cube: np.ndarray) -> list[str]:
    """Check every reproduction target; return a list of problems (empty if all hold)."""
    bad: list[str] = []
    inp, out, field, overall = nominal(cube)
    if np.isnan(cube).any() or cube.min() < 0 or cube.max() > 100:
        bad.append("values missing or outside [0, 100]")
    for j, f in enumerate(FIELDS):
        rows = [IDX[c] for c, _ in TOP10[f]]
        for (city, pub), i in zip(TOP10[f], rows, strict=True):
            if round(field[i, j], 2) != round(pub, 2):
                bad.append(f"{f} {city}: {field[i, j]:.6f} vs published {pub}")
        if round(field[rows, j].mean(), 2) != float(TOP10_MEAN[f]):
            bad.append(f"{f}: TOP10 mean {field[rows, j].mean():.6f} vs stated {TOP10_MEAN[f]}")
        if not np.all(np.diff(field[rows, j]) < 0):
            bad.append(f"{f}: TOP10 order")
        others = np.setdiff1d(np.arange(len(NAMES)), rows)
        if field[others, j].max() >= THRESHOLD[f] - MIN_MARGIN + 1e-9:
            bad.append(f"{f}: a non-TOP10 city reaches the threshold margin")
        for (ff, grp), printed in SUBMEANS.items():
            if ff == f:
                got = (inp if grp == "input" else out)[rows, j].mean()
                if round(got, len(printed.split(".")[1])) != float(printed):
                    bad.append(f"{f} {grp} TOP10 mean {got:.6f} vs stated {printed}")
    rows = [IDX[c] for c, _ in TOP15]
    if not np.all(np.diff(overall[rows]) < 0):
        bad.append("TOP15 order")
    others = np.setdiff1d(np.arange(len(NAMES)), rows)
    if overall[others].max() >= overall[rows[-1]]:
        bad.append("a non-TOP15 city reaches the 15th overall")
    target, _ = composite_targets()
    for city, _ in TOP15:
        if abs(overall[IDX[city]] - target[city]) > 1e-4:
            bad.append(f"overall {city}: {overall[IDX[city]]:.6f} vs target {target[city]:.6f}")
    return bad


def main(argv: list[str]) -> int:
    """Generate, write, re-read, verify and print a short summary."""
    outdir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    write(outdir, generate())
    cube = read_values(outdir / "values.csv")
    problems = verify(cube)
    for p in problems:
        print("FAIL", p)
    _, _, field, overall = nominal(cube)
    print(
        f"wrote {outdir / 'values.csv'} (seed {SEED}); values in [{cube.min():.2f}, {cube.max():.2f}], "
        f"field scores in [{field.min():.2f}, {field.max():.2f}]"
    )
    for city, pub in TOP15:
        got = overall[IDX[city]]
        flag = "" if round(got, 2) == pub else "  (not reproducible: all 7 fields fixed)"
        print(f"  {city:12s} published {pub:6.2f}  nominal {got:9.4f}{flag}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
