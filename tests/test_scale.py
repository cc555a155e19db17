"""Large indices: rank histograms over each city's band of ranks, the band store layout and sharded Sobol'
sums, against plain references (NumPy on the stored ranks, SALib, unsharded runs)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from SALib.analyze import sobol as salib_sobol

import engine
from engine.analysis import rank_prob, rank_statistics, summarise_store
from engine.stats.rankhist import RankHistogram, dense_fits
from engine.stats.summary import Plan
from engine.store import open_meta, verify

ROOT = Path(__file__).resolve().parents[1]
QS = (5, 50, 95)


# ------------------------------------------------------------------------------------ references
def reference(ranks: np.ndarray, nominal: np.ndarray) -> dict[str, np.ndarray]:
    """Rank statistics of (row, city, field) ranks computed plainly, cell by cell (rank 0 = unscored, left out)."""
    _, n_c, n_f = ranks.shape
    out = {k: np.full((n_c, n_f), np.nan) for k in ("mean", "shift", "q5", "q50", "q95", "top1", "top3", "top10")}
    prob = np.zeros((n_c, n_f, n_c))
    for c in range(n_c):
        for f in range(n_f):
            r = ranks[:, c, f]
            r = r[r > 0]
            if not len(r):
                continue
            out["mean"][c, f] = r.mean()
            out["shift"][c, f] = np.abs(r.astype(np.int64) - nominal[c, f]).mean()
            for q in QS:
                out[f"q{q}"][c, f] = np.percentile(r, q)
            for t in (1, 3, 10):
                out[f"top{t}"][c, f] = (r <= t).mean()
            prob[c, f] = np.bincount(r, minlength=n_c + 1)[1:] / len(r)
    out["prob"] = prob
    return out


def assert_statistics(stats: dict, ref: dict) -> None:
    """Exactly equal: the same integer sums divided once, the same type-7 arithmetic."""
    got = {k: v[1] for k, v in stats.items()}
    for name, key in (("rank_mean", "mean"), ("rank_abs_shift", "shift"), ("rank_q05", "q5"),
                      ("rank_median", "q50"), ("rank_q95", "q95")):
        have = ~np.isnan(ref[key])
        np.testing.assert_array_equal(got[name][have], ref[key][have], err_msg=name)
    for i, t in enumerate((1, 3, 10)):
        np.testing.assert_array_equal(got["prob_top"][..., i], np.nan_to_num(ref[f"top{t}"]), err_msg=f"top{t}")
    np.testing.assert_array_equal(got["rank_prob_max"], ref["prob"].max(axis=-1))


def dense_of(stats: dict, shape: tuple[int, int, int]) -> np.ndarray:
    """The dense rank probabilities of rank_statistics' output, from either layout."""
    if "rank_prob" in stats:
        return stats["rank_prob"][1]
    a = xr.Dataset({k: v for k, v in stats.items() if k.startswith("rank_prob_")})
    a = a.assign_coords(field=np.arange(shape[1]).astype(str))
    return np.stack([rank_prob(a, str(f)) for f in range(shape[1])], axis=1)


# ------------------------------------------------------------------------------- RankHistogram
ranks_st = st.tuples(st.integers(1, 9), st.integers(1, 3), st.integers(1, 25), st.integers(0, 2**32 - 1))


@given(ranks_st, st.lists(st.integers(0, 25), max_size=4))
@settings(max_examples=150, deadline=None)
def test_histogram_over_bands_equals_plain_counts(shape, cuts):
    n_c, n_f, n_s, seed = shape
    rng = np.random.default_rng(seed)
    ranks = rng.integers(0, n_c + 1, (n_s, n_c, n_f)).astype(np.int16)
    ranks[:, rng.integers(n_c)] = rng.integers(max(1, n_c - 2), n_c + 1, (n_s, n_f))  # a narrow band
    nominal = rng.integers(1, n_c + 1, (n_c, n_f))
    whole = RankHistogram.of(ranks)
    parts = [RankHistogram.of(p) for p in np.split(ranks, sorted(c % (n_s + 1) for c in cuts))]
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    incremental = RankHistogram.empty(n_c, n_f)
    for p in np.split(ranks, sorted(c % (n_s + 1) for c in cuts)):
        incremental.add_ranks(p)
    plain = np.stack([np.stack([np.bincount(ranks[:, c, f], minlength=n_c + 1)[1:] for f in range(n_f)])
                      for c in range(n_c)])
    for h in (whole, merged, incremental, RankHistogram.from_dense(plain)):
        np.testing.assert_array_equal(h.dense(), plain)
        assert h == whole
        assert h.counts.size <= plain.size
    ref = reference(ranks, nominal)
    for dense in (True, False):
        stats = rank_statistics(merged, nominal, dense=dense)
        assert_statistics(stats, ref)
        np.testing.assert_array_equal(dense_of(stats, (n_c, n_f, n_c)), ref["prob"])
    cells = rng.integers(0, n_c * n_f, 5)
    np.testing.assert_array_equal(merged.rows(cells), plain.reshape(-1, n_c)[cells])


@pytest.mark.parametrize("spill_ratio", [1, 16, 10**9])
def test_pending_rows_are_counted_before_any_read(monkeypatch, spill_ratio):
    """Rows held by add_ranks (counted a few hundred at a time) and ranks set aside outside their band
    (bands widened often, or only when read) are counted whenever the histogram is read, merged, exported or
    pickled, and a stream of chunks whose bands keep widening counts every row."""
    import pickle

    from engine.stats import rankhist

    monkeypatch.setattr(rankhist, "PENDING_ROWS", 7)
    monkeypatch.setattr(rankhist, "SPILL_RATIO", spill_ratio)
    rng = np.random.default_rng(3)
    n_c, n_f = 40, 3
    chunks = [np.clip(rng.integers(18, 23, (k, n_c, n_f)) + rng.integers(-2 * i, 2 * i + 1, (k, n_c, n_f)), 0, n_c)
              .astype(np.int16) for i, k in enumerate([3, 1, 5, 9, 2, 4, 6])]
    h = RankHistogram.empty(n_c, n_f)
    seen = []
    for i, c in enumerate(chunks):
        h.add_ranks(c)
        seen.append(c)
        done = np.concatenate(seen)
        plain = np.stack([np.stack([np.bincount(done[:, j, f], minlength=n_c + 1)[1:] for f in range(n_f)])
                          for j in range(n_c)])
        if i % 3 == 0:
            np.testing.assert_array_equal(h.dense(), plain)
        elif i % 3 == 1:
            np.testing.assert_array_equal(pickle.loads(pickle.dumps(h)).dense(), plain)
        else:
            np.testing.assert_array_equal(RankHistogram.from_export(h.export()).dense(), plain)
    other = RankHistogram.empty(n_c, n_f)
    other.add_ranks(chunks[0])  # pending on both sides of a merge
    h.add_ranks(chunks[1])
    h.merge(other)
    done = np.concatenate(chunks + [chunks[0], chunks[1]])
    np.testing.assert_array_equal(h.totals(), np.full((n_c, n_f), 0) + (done > 0).sum(axis=0))


def test_counts_widen_to_int64_before_they_could_overflow(monkeypatch):
    """Counts are int32 in memory, widened to int64 (same values) once a count could pass the int32 range
    (a small stand-in limit here), by adding rows or by merging."""
    from engine.stats import rankhist

    monkeypatch.setattr(rankhist, "INT32_MAX", 50)
    rng = np.random.default_rng(5)
    ranks = rng.integers(0, 7, (60, 6, 2)).astype(np.int16)
    plain = np.stack([np.stack([np.bincount(ranks[:, c, f], minlength=7)[1:] for f in range(2)]) for c in range(6)])
    a = RankHistogram.of(ranks[:30])
    assert a.counts.dtype == np.int32
    b = RankHistogram.of(ranks[:30])
    b.add_ranks(ranks[30:])
    assert b.counts.dtype == np.int64
    np.testing.assert_array_equal(b.dense(), plain)
    a.merge(RankHistogram.of(ranks[30:]))
    assert a.counts.dtype == np.int64 and a == b


def test_dense_layout_threshold():
    assert dense_fits(45, 8) and dense_fits(300, 21) and dense_fits(446, 21) and not dense_fits(447, 21)
    assert not dense_fits(2000, 21) and not dense_fits(1500, 2)


# ---------------------------------------------------------------------- the shipped specs, exactly
def shrink(name: str, tmp: Path) -> Path:
    text = (ROOT / "scenarios" / f"{name}.toml").read_text()
    for big, small in (("n = 16384", "n = 32"), ("n = 4096", "n = 32"), ("n = 8192", "n = 300"),
                       ("n = 1024", "n = 32")):
        text = text.replace(big, small)
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["gtii-2019", "cn36-2019", "asem-jrc", "asem-jrc-sobol"])
def test_band_analysis_equals_numpy_on_shipped_specs(tmp_path, name):
    """The analysis from rank histograms over bands (the large-index layout) and from dense ones (the
    store's layout for these sizes) both equal NumPy's statistics of the stored ranks, exactly."""
    out = tmp_path / f"{name}.zarr"
    engine.run(shrink(name, tmp_path), out=out, synchronous=True)
    store = xr.open_zarr(out)
    rows = np.isin(store["block"].values, ["A", "B", "MC"])  # the stability rows
    ranks = store["rank"].values[rows]
    nominal = store["nominal_rank"].values.astype(np.int64)
    ref = reference(ranks, nominal)
    analysis = xr.open_zarr(out, group="analysis").load()
    assert "rank_prob" in analysis and store.attrs["rank_count_layout"] == "dense"
    assert_statistics({k: (None, analysis[k].values) for k in analysis.data_vars}, ref)
    np.testing.assert_array_equal(analysis["rank_prob"].values, ref["prob"])
    np.testing.assert_array_equal(store["rank_count"].values, (ref["prob"] * rows.sum()).round())
    meta = open_meta(out)
    summary = summarise_store(out, meta, Plan.from_store(meta), list(range(int(store.attrs["n_chunks"]))))
    band = rank_statistics(summary.hist, nominal, dense=False)
    assert "rank_prob" not in band
    assert_statistics(band, ref)
    np.testing.assert_array_equal(dense_of(band, ranks.shape[1:] + (ranks.shape[1],)), ref["prob"])


# -------------------------------------------------------------------------- a large-layout store
def write_dataset(folder: Path, cities: int, indicators: int = 4, groups: int = 2, seed: int = 0) -> Path:
    """A SYNTHETIC complete dataset (random values) of one field: enough cities for the band layout."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    quality = rng.normal(0, 1, (cities, 1))
    value = 100 * np.exp(0.3 * (0.6 * quality + 0.8 * rng.normal(0, 1, (cities, indicators))))
    ind = [f"X{i}" for i in range(indicators)]
    pd.DataFrame({"city": np.repeat([f"C{c:05d}" for c in range(cities)], indicators), "field": "F0",
                  "indicator": np.tile(ind, cities), "value": np.round(value.ravel(), 4)}).to_csv(
        folder / "values.csv", index=False)
    meta = {"name": "synthetic-band-test", "title": "SYNTHETIC test data", "synthetic": True,
            "description": "SYNTHETIC random values for tests", "source": "tests/test_scale.py",
            "nominal": {"normalisation": "minmax:1,100", "aggregation": "arithmetic", "outlier": "none",
                        "imputation": "none"},
            "field": [{"code": "F0", "name": "Field 0", "weight": 1.0}],
            "group": [{"code": f"G{g}", "name": f"Group {g}", "parent": "", "weight": 1.0} for g in range(groups)],
            "indicator": [{"code": x, "name": x, "parent": f"G{i * groups // indicators}", "direction": 1,
                           "weight": 1.0} for i, x in enumerate(ind)]}
    (folder / "meta.toml").write_text(tomli_w.dumps(meta))
    return folder / "meta.toml"


SPEC = """name = "band-{kind}"
[dataset]
path = "{data}/values.csv"
meta = "{data}/meta.toml"
[design]
kind = "{kind}"
n = {n}
seed = 3
chunk = {chunk}
[[factor]]
kind = "weight"
level = "group"
range = 0.5
[[factor]]
name = "normalisation"
kind = "normalisation"
choices = ["minmax:1,100", "rank", "distance_to_leader"]
[[factor]]
name = "aggregation"
kind = "aggregation"
choices = ["arithmetic", "geometric"]
"""


@pytest.fixture(scope="module")
def band_data(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("band")
    write_dataset(tmp / "data", 1500)
    return tmp


def band_spec(tmp: Path, kind: str, n: int, chunk: int) -> Path:
    path = tmp / f"{kind}-{n}.toml"
    path.write_text(SPEC.format(kind=kind, n=n, chunk=chunk, data=tmp / "data"))
    return path


@pytest.fixture(scope="module")
def cluster():
    from engine.clusters import connect

    with connect("local", workers=2) as client:
        yield client


@pytest.mark.slow
def test_band_store_on_a_cluster_equals_numpy_and_resumes(band_data, cluster):
    """1500 cities x (1 field + overall): the store keeps rank_count over bands, no per-chunk histograms;
    a run interrupted and resumed on a 2-worker cluster gives the statistics NumPy gives on its ranks."""
    spec = band_spec(band_data, "montecarlo", 300, 64)
    out = band_data / "mc.zarr"
    engine.run(spec, out=out, client=cluster, max_chunks=2, overwrite=True)  # interrupted
    engine.run(spec, out=out, client=cluster, resume=True)
    store = xr.open_zarr(out)
    assert store.attrs["rank_count_layout"] == "band" and "chunk_rank_count" not in store
    assert "rank_count" not in store and store["rank_count_values"].dims == ("rank_band",)
    assert verify(out) == []
    ranks = store["rank"].values
    nominal = store["nominal_rank"].values.astype(np.int64)
    ref = reference(ranks, nominal)
    total = RankHistogram((1500, 2), 1500, store["rank_count_first"].values.ravel().astype(np.int32),
                          np.r_[store["rank_count_start"].values.ravel(), store.sizes["rank_band"]],
                          store["rank_count_values"].values)
    np.testing.assert_array_equal(total.dense(), np.rint(ref["prob"] * 300).astype(np.int64))
    assert total.counts.size < 0.5 * 1500 * 1500 * 2  # the bands are much smaller than the dense histogram
    analysis = xr.open_zarr(out, group="analysis").load()
    assert "rank_prob" not in analysis
    assert_statistics({k: (None, analysis[k].values) for k in analysis.data_vars}, ref)
    for f, fld in enumerate(analysis["field"].values):
        np.testing.assert_array_equal(rank_prob(analysis, fld, [0, 7, 1499]), ref["prob"][[0, 7, 1499], f])
    # a damaged histogram is caught
    import zarr

    g = zarr.open_group(str(out), mode="r+")
    g["rank_count_values"][0] += 1
    assert verify(out) == ["rank_count does not equal the histogram of the stored ranks"]


@pytest.mark.slow
def test_sharded_sobol_sums_equal_unsharded_and_salib(band_data, cluster, monkeypatch):
    """Sobol' sums shared between two workers (forced here; automatic for large indices) give the rank
    indices of one process exactly, the score indices to rounding, and SALib's point estimates."""
    import engine.sweep.shards as shards

    spec = band_spec(band_data, "sobol", 32, 24)
    one = band_data / "sobol-one.zarr"
    engine.run(spec, out=one, synchronous=True, overwrite=True)
    monkeypatch.setattr(shards, "SHARD_BYTES", 0)
    two = band_data / "sobol-two.zarr"
    engine.run(spec, out=two, client=cluster, max_chunks=3, overwrite=True)  # interrupted: the rest is shared
    engine.run(spec, out=two, client=cluster, resume=True)  # on resume, its earlier chunks recomputed
    a, b = (xr.open_zarr(p, group="analysis").load() for p in (one, two))
    for name in ("S1", "ST", "S1_conf", "ST_conf", "constant"):
        np.testing.assert_array_equal(a[name].sel(target="rank").values, b[name].sel(target="rank").values)
        rtol = 1e-4 if "conf" in name else 1e-9
        np.testing.assert_allclose(a[name].sel(target="score").values, b[name].sel(target="score").values,
                                   rtol=rtol, atol=1e-6 if "conf" in name else 1e-12, err_msg=name)
    for name in ("S1_rbar", "ST_rbar", "S1_conf_rbar", "ST_conf_rbar"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    # rank outputs alone ([design] sobol_targets): the shards sum no scores, the rank indices are the same
    ranks_only = band_data / "sobol-rank.toml"
    ranks_only.write_text(spec.read_text().replace("seed = 3", 'seed = 3\nsobol_targets = ["rank"]'))
    engine.run(ranks_only, out=band_data / "sobol-rank.zarr", client=cluster, overwrite=True)
    c = xr.open_zarr(band_data / "sobol-rank.zarr", group="analysis").load()
    assert list(c["target"].values) == ["rank"]
    for name in ("S1", "ST", "S1_conf", "ST_conf", "constant"):
        np.testing.assert_array_equal(a[name].sel(target=["rank"]).values, c[name].values)
    store = xr.open_zarr(two)
    names = list(b["factor"].values)
    problem = {"num_vars": len(names), "names": names, "bounds": [[0, 1]] * len(names)}
    for target in ("rank", "score"):
        y = store[target].values.astype(np.float64)
        for c in (0, 750, 1499):
            if y[:, c, 1].std() == 0:
                continue
            ref = salib_sobol.analyze(problem, y[:, c, 1], calc_second_order=False, print_to_console=False)
            got = b.sel(target=target).isel(city=c, field=1)
            np.testing.assert_allclose(got["S1"].values, ref["S1"], atol=1e-10)
            np.testing.assert_allclose(got["ST"].values, ref["ST"], atol=1e-10)


def test_shard_buffer_gives_the_sums_of_one_pass(band_data, monkeypatch):
    """A shard gathers chunks (arriving in any order) in a buffer and adds them together when it fills:
    any buffer size, down to one chunk at a time, gives the same indices (rank outputs exactly, score
    outputs to rounding: their float sums are added in another order)."""
    import engine.stats.summary as summary

    spec = band_spec(band_data, "sobol", 16, 24)
    out = band_data / "sobol-buffer.zarr"
    engine.run(spec, out=out, synchronous=True, overwrite=True)
    store = xr.open_zarr(out)
    plan = Plan.from_store(store)
    n = int(store.attrs["n_scenarios"])
    ranks, scores = (store[v].values.reshape(n, -1) for v in ("rank", "score"))
    chunks = list(range(-(-n // plan.chunk)))[::-1]  # last chunk first
    results = []
    for size in (1, 3 * 24 * ranks.shape[1] * 6, 2**30):  # bytes: every chunk alone, a few at a time, all
        monkeypatch.setattr(summary, "SHARD_BUFFER", size)
        shard = summary.SobolShard(plan, 0, 1)
        for k in chunks:
            a, b = plan.bounds(k)
            shard.add(k, a // plan.block_size, ranks[a:b], scores[a:b])
            shard.add(k, a // plan.block_size, ranks[a:b], scores[a:b])  # a chunk counts once
        results.append(shard.result(0.95))
    shard = summary.SobolShard(replace(plan, targets=("rank",)), 0, 1)  # a rank-only shard takes no scores
    for k in chunks:
        a, b = plan.bounds(k)
        shard.add(k, a // plan.block_size, ranks[a:b], None)
    alone = shard.result(0.95)
    assert list(alone) == ["rank"]
    for key, value in results[0]["rank"].items():
        np.testing.assert_array_equal(alone["rank"][key], value, err_msg=key)
    for got in results[1:]:
        for target in ("rank", "score"):
            for key, value in results[0][target].items():
                if target == "rank":
                    np.testing.assert_array_equal(got[target][key], value, err_msg=key)
                else:
                    tol = 1e-4 if "conf" in key else 1e-9
                    np.testing.assert_allclose(got[target][key], value, rtol=tol, atol=tol, err_msg=key)
