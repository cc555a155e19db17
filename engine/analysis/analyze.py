"""Rank stability and Sobol sensitivity of every city x field rank: ``rankstab analyze``.

Rank statistics use the stability rows: every scenario of a Monte Carlo run, the A and B rows of a
Sobol run (the convention). Percentiles follow R's type 7 (NumPy's default ``linear``), as COINr does,
computed exactly from the merged rank histogram. Sobol indices are SALib's estimators (Saltelli 2010
first order, Jansen total, SALib's second order) for every output at once, with bootstrap intervals over
base samples, from the sums in :class:`engine.summary.Summary`: accumulated by the sweep's tasks
(``rankstab run``), or chunk by chunk from a store (``rankstab analyze``).

The result is written as the group ``analysis`` of the store:
``xarray.open_zarr(path, group="analysis")``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from ..errors import UserError
from ..stats.summary import TARGETS, Plan, Summary
from ..store import open_meta
from ..sweep import outputs, store_job
from .stability import RARE, TOPS, rank_statistics
from .table import summary_table


def analyze(path: str | Path, *, partial: bool = False, num_resamples: int | None = None,
            conf_level: float | None = None, write: bool = True, seed: int = 0) -> xr.Dataset:
    """Rank stability (and Sobol indices for Sobol designs) of a store; written to its ``analysis`` group.

    Summarises the store chunk by chunk (stored ranks and scores, or recomputed ones when the store keeps
    only summaries): memory stays bounded whatever the number of scenarios."""
    path = Path(getattr(path, "encoding", {}).get("source", path)) if isinstance(path, xr.Dataset) else Path(path)
    store = open_meta(path)
    done = store["chunk_done"].values.astype(bool)
    complete = bool(store.attrs.get("complete")) and done.all()
    if not complete:
        plan = Plan.from_store(store)
        n_done = sum(b - a for a, b in map(plan.bounds, np.flatnonzero(done)))
        msg = (f"{path} is incomplete: {int(done.sum())} of {done.size} chunks done "
               f"({n_done:,} of {plan.n_scenarios:,} scenarios)")
        if not partial:
            raise UserError(f"{msg}; finish it with `rankstab run SPEC --out {path} --resume`, or analyse the "
                            f"completed part with --partial (Monte Carlo runs only); nothing was analysed")
        if plan.sobol:
            raise UserError(f"{msg}; a Sobol design needs every Saltelli block: finish it with --resume")
        if not n_done:
            raise UserError(f"{msg}; there is nothing to analyse yet")
    plan = Plan.from_store(store, num_resamples, seed)
    summary = summarise_store(path, store, plan, [int(k) for k in np.flatnonzero(done)])
    out = build(store, summary, complete, conf_level)
    if write:
        write_analysis(path, out)
    return out


def summarise_store(path: Path, store: xr.Dataset, plan: Plan, chunks: list[int]) -> Summary:
    """A summary of the given chunks from the stored scores and ranks (recomputed if not stored)."""
    summary = Summary(plan)
    if "rank" in store and "score" in store:
        rank, score = (zarr.open_array(str(path / name), mode="r") for name in ("rank", "score"))
        for k in chunks:
            a, b = plan.bounds(k)
            summary.add(k, score[a:b], rank[a:b])
        return summary
    job = store_job(path, analyse=False)
    for k in chunks:
        _, _, scores, ranks = outputs(job, *plan.bounds(k))
        summary.add(k, scores, ranks)
    return summary


def build(store: xr.Dataset, summary: Summary, complete: bool = True, conf_level: float | None = None) -> xr.Dataset:
    """The analysis dataset of a summary (see the module docstring for its variables)."""
    plan = summary.plan
    stats = rank_statistics(summary.hist, plan.nominal_rank, plan.dense)
    out = xr.Dataset({k: v for k, v in stats.items()})
    n_stab = summary.n_stability
    for name in ("rbar", "spearman", "kendall"):
        out[f"{name}_mean"] = ("field", summary.mean(name))
        for q in (5, 50, 95) if name == "rbar" else (5, 95):
            label = "median" if q == 50 else f"q{q:02d}"
            out[f"{name}_{label}"] = ("field", summary.quantile(name, q / 100))
    top = plan.top
    out["pair_prob"] = (("field", "top_city", "top_city_other"), summary.above / max(n_stab, 1))
    cities = store["city"].values
    out = out.assign_coords(city=cities, field=store["field"].values, top=list(TOPS),
                            rank=np.arange(1, store.sizes["city"] + 1),
                            city_name=("city", store["city_name"].values),
                            top_city=cities[top], top_city_other=cities[top])
    if summary.has_sobol:
        conf = float(conf_level or store.attrs.get("conf_level", 0.95))
        sens = _sobol(store, summary, conf)
        out = out.merge(sens)
        out.attrs.update(sens.attrs)
        # a rank that almost never moves has a tiny variance: its indices are unreliable and flagged
        rare = (out["rank_prob_max"] >= RARE) & ~out["constant"].sel(target="rank", drop=True)
        out["nearly_constant"] = rare
        st_conf = out["ST_conf"].where(~(rare & (out["target"] == "rank")))
        out.attrs["max_ST_conf"] = float(np.nanmax(st_conf.values))
        out.attrs["nearly_constant_share"] = RARE
    out.attrs.update(
        n_stability_scenarios=int(n_stab), n_scenarios=plan.n_scenarios, partial=int(not complete),
        design_kind=plan.kind,
        percentile_convention="R type 7 (numpy linear)", spec_hash=store.attrs["spec_hash"],
        description="rank stability (and Sobol sensitivity) of every city x field rank",
    )
    return out


def _sobol(store: xr.Dataset, summary: Summary, conf: float) -> xr.Dataset:
    plan = summary.plan
    groups = json.loads(store.attrs["factor_groups"])
    factors = list(store["factor"].values)
    grouped = len(groups) < len(factors)
    dim = "factor_group" if grouped else "factor"
    names = groups if grouped else factors
    n_c, n_f = plan.nominal_rank.shape
    res = {t: summary.sobol_result(t, conf) for t in TARGETS}
    cf = ("city", "field")

    def stack(key: str, lead: int) -> np.ndarray:
        return np.stack([res[t][key].reshape(*res[t][key].shape[:lead], n_c, n_f) for t in TARGETS])

    out = xr.Dataset({key: (("target", dim, *cf), stack(key, 1)) for key in ("S1", "ST", "S1_conf", "ST_conf")})
    out["constant"] = (("target", *cf), stack("constant", 0))
    if plan.second_order:
        for key in ("S2", "S2_conf"):
            out[key] = (("target", dim, f"{dim}_other", *cf), stack(key, 2))
    rb = summary.sobol_result("rbar", conf)
    for key in ("S1", "ST", "S1_conf", "ST_conf"):
        out[f"{key}_rbar"] = ((dim, "field"), rb[key])
    out = out.assign_coords({"target": list(TARGETS), dim: names})
    if plan.second_order:
        out = out.assign_coords({f"{dim}_other": names})
    out.attrs.update(num_resamples=plan.num_resamples, conf_level=conf,
                     max_ST_conf=float(np.nanmax(out["ST_conf"].values)), sobol_dim=dim,
                     estimators="S1 Saltelli 2010, ST Jansen 1999, S2 as SALib; bootstrap over base samples")
    return out


def write_summary(path: Path, summary: Summary) -> None:
    """Build and write the analysis of a whole run's summary (what ``rankstab run`` does after the sweep)."""
    write_analysis(path, build(open_meta(path), summary))


def write_analysis(path: Path, out: xr.Dataset) -> None:
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
