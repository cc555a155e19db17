"""Rank stability and Sobol sensitivity of every city x field rank: ``rankstab analyze``.

Rank statistics use the stability rows: every scenario of a Monte Carlo run, the A and B rows of a
Sobol run (the convention). Percentiles follow R's type 7 (NumPy's default ``linear``), as COINr does,
computed exactly from the merged rank histogram. Sobol indices are SALib's estimators (Saltelli 2010
first order, Jansen total, SALib's second order) computed for every output at once by
:func:`engine.sobol.sobol_indices`, with bootstrap intervals over base samples.

The result is written as the group ``analysis`` of the store:
``xarray.open_zarr(path, group="analysis")``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from .design import stability_rows
from .errors import UserError
from .sobol import sobol_indices
from .store import open_store

TOPS = (1, 3, 10)
RARE = 0.99  # a rank held in at least this share of scenarios is "nearly constant"
TARGETS = ("rank", "score")


# ------------------------------------------------------------------------------------- rank statistics

def hist_quantile(counts: np.ndarray, q: float) -> np.ndarray:
    """Type-7 quantile of integer values 1..R given their counts (..., R), exactly as
    ``np.percentile(values, 100 q)`` on the expanded values."""
    cum = np.cumsum(counts, axis=-1)
    n = cum[..., -1]
    h = (n - 1) * q
    lo = np.floor(h).astype(np.int64)
    frac = h - lo
    ranks = np.arange(1, counts.shape[-1] + 1)

    def value_at(i):  # the i-th smallest value (0-based)
        idx = (cum <= i[..., None]).sum(axis=-1)
        return ranks[np.minimum(idx, len(ranks) - 1)]

    v_lo = value_at(lo)
    v_hi = value_at(np.minimum(lo + 1, n - 1))
    return np.where(n > 0, v_lo + frac * (v_hi - v_lo), np.nan)


def rank_statistics(counts: np.ndarray, nominal_rank: np.ndarray) -> dict[str, tuple]:
    """Per (city, field) statistics from rank histograms ``counts`` (city, field, rank)."""
    total = counts.sum(axis=-1, keepdims=True)
    prob = counts / np.maximum(total, 1)
    r = np.arange(1, counts.shape[-1] + 1)
    mean = (prob * r).sum(axis=-1)
    q05, med, q95 = (hist_quantile(counts, q) for q in (0.05, 0.5, 0.95))
    cum = np.cumsum(prob, axis=-1)
    top = np.stack([cum[..., min(t, counts.shape[-1]) - 1] for t in TOPS], axis=-1)
    shift = (prob * np.abs(r - nominal_rank[..., None])).sum(axis=-1)
    cf = ("city", "field")
    return {
        "rank_nominal": (cf, nominal_rank.astype(np.int16)),
        "rank_mean": (cf, mean), "rank_median": (cf, med), "rank_q05": (cf, q05), "rank_q95": (cf, q95),
        "rank_interval_width": (cf, q95 - q05),
        "rank_median_shift": (cf, np.abs(nominal_rank - med)),
        "rank_abs_shift": (cf, shift),
        "prob_top": ((*cf, "top"), top),
        "rank_prob": ((*cf, "rank"), prob),
    }


def correlation_statistics(ranks: np.ndarray, nominal_rank: np.ndarray, block: int = 1024) -> dict[str, np.ndarray]:
    """Spearman and Kendall (tau-b) correlation of each scenario's ranking with the nominal one, per field:
    (scenario, field). Ranks are (scenario, city, field) int; ties as given (competition ranks).
    Computed in blocks of scenarios to bound memory."""
    nom = nominal_rank.astype(np.float64)
    nc = nom - nom.mean(axis=0, keepdims=True)
    i, j = np.triu_indices(nom.shape[0], 1)
    b = np.sign(nom[i, :] - nom[j, :]).astype(np.int8)[None]
    nb = (b != 0).sum(axis=1)
    spearman = np.empty((len(ranks), nom.shape[1]))
    kendall = np.empty_like(spearman)
    for lo in range(0, len(ranks), block):
        r = ranks[lo:lo + block].astype(np.float64)
        rc = r - r.mean(axis=1, keepdims=True)
        den = np.sqrt((rc**2).sum(axis=1) * (nc**2).sum(axis=0)[None])
        spearman[lo:lo + block] = np.divide((rc * nc[None]).sum(axis=1), den, out=np.ones_like(den), where=den > 0)
        ri = ranks[lo:lo + block].astype(np.int16)
        a = np.sign(ri[:, i, :] - ri[:, j, :]).astype(np.int8)
        num = (a * b).sum(axis=1, dtype=np.int64)
        den = np.sqrt((a != 0).sum(axis=1) * nb)
        kendall[lo:lo + block] = np.divide(num, den, out=np.ones(num.shape), where=den > 0)
    return {"spearman": spearman, "kendall": kendall}


def pair_probability(ranks: np.ndarray, cities: np.ndarray) -> np.ndarray:
    """P(city a ranks strictly above city b) for the given city indices: (field, a, b)."""
    sub = ranks[:, cities, :].astype(np.int32)
    return (sub[:, :, None, :] < sub[:, None, :, :]).mean(axis=0).transpose(2, 0, 1)


# ------------------------------------------------------------------------------------------- analyze

def _read(path: str | Path, name: str, rows: np.ndarray | None = None) -> np.ndarray:
    """A whole per-scenario array (or some rows of it) read with zarr directly: faster than through dask."""
    arr = zarr.open_array(str(Path(path) / name), mode="r")
    if rows is None or (rows.size == arr.shape[0] and rows.size and rows[-1] == rows.size - 1):
        return arr[:]
    return arr.get_orthogonal_selection((rows,)) if rows.size else np.zeros((0, *arr.shape[1:]), arr.dtype)


def _done_rows(store: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    done = store["chunk_done"].values.astype(bool)
    chunk, n = int(store.attrs["chunk"]), int(store.attrs["n_scenarios"])
    rows = np.concatenate([np.arange(k * chunk, min((k + 1) * chunk, n)) for k in np.flatnonzero(done)] or
                          [np.zeros(0, np.int64)])
    return done, rows


def analyze(path: str | Path, *, partial: bool = False, num_resamples: int | None = None,
            conf_level: float | None = None, write: bool = True, seed: int = 0) -> xr.Dataset:
    """Rank stability (and Sobol indices for Sobol designs) of a store; written to its ``analysis`` group."""
    path = Path(getattr(path, "encoding", {}).get("source", path)) if isinstance(path, xr.Dataset) else Path(path)
    store = open_store(path)
    done, rows = _done_rows(store)
    complete = bool(store.attrs.get("complete")) and done.all()
    sobol = store.attrs["design_kind"] == "sobol"
    if not complete:
        msg = (f"{path} is incomplete: {int(done.sum())} of {done.size} chunks done "
               f"({rows.size:,} of {int(store.attrs['n_scenarios']):,} scenarios)")
        if not partial:
            raise UserError(f"{msg}; finish it with `rankstab run SPEC --out {path} --resume`, or analyse the "
                            f"completed part with --partial (Monte Carlo runs only); nothing was analysed")
        if sobol:
            raise UserError(f"{msg}; a Sobol design needs every Saltelli block: finish it with --resume")
        if not rows.size:
            raise UserError(f"{msg}; there is nothing to analyse yet")
    nominal_rank = store["nominal_rank"].values.astype(np.int64)
    counts = store["chunk_rank_count"].values[done].sum(axis=0)
    stats = rank_statistics(counts, nominal_rank)

    stab = stability_rows(rows, store.attrs["design_kind"], int(store.attrs["block_size"]))
    rbar = _read(path, "rbar", stab)
    out = xr.Dataset({k: v for k, v in stats.items()})
    out["rbar_mean"] = ("field", rbar.mean(axis=0))
    for q, name in ((0.05, "rbar_q05"), (0.5, "rbar_median"), (0.95, "rbar_q95")):
        out[name] = ("field", np.percentile(rbar, 100 * q, axis=0))
    all_ranks = _read(path, "rank") if "rank" in store and sobol else None  # read once, used twice
    if "rank" in store:
        ranks = all_ranks[stab] if all_ranks is not None else _read(path, "rank", stab)
        corr = correlation_statistics(ranks, nominal_rank)
        for name, v in corr.items():
            out[f"{name}_mean"] = ("field", v.mean(axis=0))
            out[f"{name}_q05"] = ("field", np.percentile(v, 5, axis=0))
            out[f"{name}_q95"] = ("field", np.percentile(v, 95, axis=0))
        order = np.argsort(nominal_rank[:, -1], kind="stable")[:10]
        out["pair_prob"] = (("field", "top_city", "top_city_other"), pair_probability(ranks, order))
        out = out.assign_coords(top_city=store["city"].values[order], top_city_other=store["city"].values[order])
    out = out.assign_coords(city=store["city"].values, field=store["field"].values, top=list(TOPS),
                            rank=np.arange(1, store.sizes["city"] + 1),
                            city_name=("city", store["city_name"].values))
    if sobol:
        sens = _sobol(path, store, num_resamples, conf_level, seed, all_ranks)
        del all_ranks
        out = out.merge(sens)
        out.attrs.update(sens.attrs)
        if "rank" in out.coords.get("target", []):
            # a rank that almost never moves has a tiny variance: its indices are unreliable and flagged
            rare = (out["rank_prob"].max("rank") >= RARE) & ~out["constant"].sel(target="rank", drop=True)
            out["nearly_constant"] = rare
            st_conf = out["ST_conf"].where(~(rare & (out["target"] == "rank")))
            out.attrs["max_ST_conf"] = float(np.nanmax(st_conf.values))
            out.attrs["nearly_constant_share"] = RARE
    out.attrs.update(
        n_stability_scenarios=int(stab.size), partial=int(not complete), design_kind=store.attrs["design_kind"],
        percentile_convention="R type 7 (numpy linear)", spec_hash=store.attrs["spec_hash"],
        description="rank stability (and Sobol sensitivity) of every city x field rank",
    )
    if write:
        _write(path, out)
    return out


def _sobol(path: Path, store: xr.Dataset, num_resamples, conf_level, seed,
           ranks: np.ndarray | None = None) -> xr.Dataset:
    groups = json.loads(store.attrs["factor_groups"])
    factors = list(store["factor"].values)
    grouped = len(groups) < len(factors)
    dim = "factor_group" if grouped else "factor"
    names = groups if grouped else factors
    D = len(names)
    second = bool(store.attrs["second_order"])
    R = int(num_resamples or store.attrs.get("num_resamples", 100))
    conf = float(conf_level or store.attrs.get("conf_level", 0.95))
    kw = dict(D=D, second_order=second, num_resamples=R, conf_level=conf, seed=seed + 1)
    n_f = store.sizes["field"]
    res: dict[str, list] = {}
    targets = [t for t in TARGETS if t in store]
    for target in targets:
        values = ranks if target == "rank" and ranks is not None else _read(path, target)
        per_field = []
        for f in range(n_f):  # one field at a time bounds memory; every city's output in one pass
            per_field.append(sobol_indices(np.ascontiguousarray(values[:, :, f]), **kw))
        del values
        for key in per_field[0]:
            res.setdefault(key, []).append(np.stack([p[key] for p in per_field], axis=-1))
    out = xr.Dataset()
    cf = ("city", "field")
    if targets:
        out["S1"] = (("target", dim, *cf), np.stack(res["S1"]))
        out["ST"] = (("target", dim, *cf), np.stack(res["ST"]))
        out["S1_conf"] = (("target", dim, *cf), np.stack(res["S1_conf"]))
        out["ST_conf"] = (("target", dim, *cf), np.stack(res["ST_conf"]))
        out["constant"] = (("target", *cf), np.stack(res["constant"]))
        if second:
            out["S2"] = (("target", dim, f"{dim}_other", *cf), np.stack(res["S2"]))
            out["S2_conf"] = (("target", dim, f"{dim}_other", *cf), np.stack(res["S2_conf"]))
        out = out.assign_coords(target=targets)
    rb = sobol_indices(_read(path, "rbar").astype(np.float64), **kw)
    for key in ("S1", "ST", "S1_conf", "ST_conf"):
        out[f"{key}_rbar"] = ((dim, "field"), rb[key])
    out = out.assign_coords({dim: names})
    if second:
        out = out.assign_coords({f"{dim}_other": names})
    widest = float(np.nanmax(out["ST_conf"].values)) if "ST_conf" in out else float(np.nanmax(rb["ST_conf"]))
    out.attrs.update(num_resamples=R, conf_level=conf, max_ST_conf=widest, sobol_dim=dim,
                     estimators="S1 Saltelli 2010, ST Jansen 1999, S2 as SALib; bootstrap over base samples")
    return out


def _write(path: Path, out: xr.Dataset) -> None:
    try:
        out.to_zarr(str(path), group="analysis", mode="w", zarr_format=3, consolidated=False)
        zarr.consolidate_metadata(str(path))
    except OSError as exc:
        raise UserError(f"{path}: cannot write the analysis ({exc.strerror}); check space and permissions") from None


def open_analysis(path: str | Path) -> xr.Dataset:
    try:
        return xr.open_zarr(str(path), group="analysis", consolidated=False)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        raise UserError(f"{path} has no analysis yet; run `rankstab analyze {path}` first") from None


# ------------------------------------------------------------------------------------------ summary

def summary_table(result: xr.Dataset, store: xr.Dataset | None = None, n: int = 10) -> str:
    """A concise text summary: the overall ranking's stability and, for Sobol runs, what drives it."""
    lines = []
    field = "overall"
    res = result.sel(field=field)
    order = np.argsort(res["rank_nominal"].values, kind="stable")[:n]
    sens = "ST" in result
    head = f"{'city':<18} {'nominal':>7} {'median':>7} {'5-95 %':>11} {'P(top3)':>8}"
    lines.append(f"rank stability, field {field} ({result.attrs['n_stability_scenarios']:,} scenarios"
                 f"{', PARTIAL' if result.attrs.get('partial') else ''}):")
    lines.append(head + ("  main driver (ST of rank)" if sens else ""))
    for c in order:
        r = res.isel(city=c)
        row = (f"{str(r['city_name'].values):<18.18} {int(r['rank_nominal']):>7} {float(r['rank_median']):>7.1f} "
               f"{float(r['rank_q05']):>5.1f}-{float(r['rank_q95']):<5.1f} {float(r['prob_top'].sel(top=3)):>8.2f}")
        if sens and bool(result["constant"].sel(target="rank", field=field).isel(city=c)):
            row += "  (rank never moves)"
        elif sens and "nearly_constant" in result and bool(result["nearly_constant"].sel(field=field).isel(city=c)):
            row += "  (rank almost never moves)"
        elif sens:
            st = result["ST"].sel(target="rank", field=field).isel(city=c)
            dim = result.attrs.get("sobol_dim", st.dims[0])
            k = int(np.nanargmax(st.values))
            row += f"  {st[dim].values[k]} ({float(st.values[k]):.2f})"
        lines.append(row)
    rb = " ".join(f"{f}={v:.2f}" for f, v in zip(result["field"].values, result["rbar_mean"].values, strict=True))
    lines.append(f"mean rank shift from nominal (R-bar) by field: {rb}")
    if sens:
        lines.append(f"widest ST confidence interval (+-): {result.attrs['max_ST_conf']:.3f} "
                     f"(ranks held in >= {RARE:.0%} of scenarios excluded)")
    return "\n".join(lines)


def analyze_cli(args) -> int:
    if args.remove_one:
        from .remove_one import remove_one, remove_one_table

        print(remove_one_table(remove_one(args.remove_one)))
        return 0
    if not args.store:
        raise UserError("give a store to analyse (rankstab analyze results/NAME.zarr) or --remove-one DATASET")
    result = analyze(args.store, partial=args.partial)
    print(summary_table(result))
    if result.attrs.get("partial"):
        print(f"PARTIAL analysis of the completed Monte Carlo scenarios only ({result.attrs['n_stability_scenarios']:,})")
    print(f"wrote group 'analysis' of {args.store}")
    return 0
