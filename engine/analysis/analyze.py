"""Rank stability and Sobol sensitivity of every city x field rank: ``rankstab analyze``.

Rank statistics use the stability rows: every scenario of a Monte Carlo run, the A and B rows of a
Sobol run (the convention). Percentiles follow R's type 7 (NumPy's default ``linear``), as COINr does,
computed exactly from the merged rank histogram. Sobol indices are SALib's estimators (Saltelli 2010
first order, Jansen total, SALib's second order) for every output at once, with bootstrap intervals over
base samples, from the sums in :class:`engine.stats.summary.Summary`: accumulated by the sweep's tasks
(``rankstab run``), or chunk by chunk from a store (``rankstab analyze``). Monte Carlo runs get
sensitivity from given data instead (:mod:`engine.stats.given`): ``S1_given`` (binning estimator of the
first-order index) and Borgonovo's ``delta`` per factor, with bootstrap intervals.

SMAA-2 central weights and confidence factors: :mod:`engine.analysis.smaa`.

The result is written as the group ``analysis`` of the store:
``xarray.open_zarr(path, group="analysis")``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from .. import __version__
from ..errors import UserError, option, resume_command
from ..stats.summary import TARGETS, Plan, Summary
from ..store import (
    CONVENTIONS,
    check_store,
    consolidate,
    describe,
    lock,
    lost_chunks,
    open_meta,
    vlen_strings,
)
from ..store.atomic import remove_tree, staging_path, swap_in, trash_path
from ..sweep import given_plan, outputs, store_job
from .stability import RARE, TOPS, rank_statistics
from .table import summary_table


def analyze(path: str | Path, *, partial: bool = False, num_resamples: int | None = None,
            conf_level: float | None = None, write: bool = True, seed: int = 0) -> xr.Dataset:
    """Rank stability (and Sobol indices for Sobol designs) of a store; written to its ``analysis`` group.

    Summarises the store chunk by chunk (stored ranks and scores, or recomputed ones when the store keeps
    only summaries): memory stays bounded whatever the number of scenarios. A store whose chunks flagged
    done have lost files is refused (nothing is written); the group is replaced whole or not at all, under
    the store's lock."""
    path = Path(getattr(path, "encoding", {}).get("source", path)) if isinstance(path, xr.Dataset) else Path(path)
    check_store(path)
    if not write:
        return _analyze(path, partial, num_resamples, conf_level, seed)
    with lock(path):
        out = _analyze(path, partial, num_resamples, conf_level, seed)
        write_analysis(path, out)
    return out


def _analyze(path: Path, partial: bool, num_resamples: int | None, conf_level: float | None,
             seed: int) -> xr.Dataset:
    lost = lost_chunks(path)
    if lost:
        raise UserError(f"{path}: {lost[0]}; the store is damaged and nothing was analysed (the previous analysis "
                        f"is kept): run its spec again with {option('overwrite')}")
    store = open_meta(path)
    done = store["chunk_done"].values.astype(bool)
    complete = bool(store.attrs.get("complete")) and done.all()
    if not complete:
        plan = Plan.from_store(store)
        n_done = sum(b - a for a, b in map(plan.bounds, np.flatnonzero(done)))
        msg = (f"{path} is incomplete: {int(done.sum())} of {done.size} chunks done "
               f"({n_done:,} of {plan.n_scenarios:,} scenarios)")
        if not partial:
            raise UserError(f"{msg}; finish it with {resume_command(path)}, or analyse the completed part "
                            f"with {option('partial')} (Monte Carlo runs only); nothing was analysed")
        if plan.sobol:
            raise UserError(f"{msg}; a Sobol design needs every Saltelli block: finish it with {resume_command(path)}")
        if not n_done:
            raise UserError(f"{msg}; there is nothing to analyse yet")
    plan = Plan.from_store(store, num_resamples, seed)
    summary = summarise_store(path, store, plan, [int(k) for k in np.flatnonzero(done)])
    return build(store, summary, complete, conf_level, path=path)


def summarise_store(path: Path, store: xr.Dataset, plan: Plan, chunks: list[int]) -> Summary:
    """A summary of the given chunks from the stored scores and ranks (recomputed if not stored)."""
    job = store_job(path, analyse=False)
    if not plan.sobol and plan.given is None:
        plan = given_plan(job, plan)
    summary = Summary(plan)
    if "rank" in store and "score" in store:
        rank, score, weight, design = (zarr.open_array(str(path / name), mode="r")
                                       for name in ("rank", "score", "weight", "design"))
        for k in chunks:
            a, b = plan.bounds(k)
            try:
                s, r, w, x = score[a:b], rank[a:b], weight[a:b], design[a:b]
            except Exception as exc:  # noqa: BLE001 - a damaged chunk file (truncated, overwritten)
                raise UserError(f"{path}: chunk {k} cannot be read ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:120]}); the store is damaged and nothing was "
                                f"analysed: run its spec again with {option('overwrite')}") from None
            summary.add(k, s, r, weights=w, design=x)
        return summary
    for k in chunks:
        x, dec, scores, ranks = outputs(job, *plan.bounds(k))
        summary.add(k, scores, ranks, weights=dec.batch.weights, design=x)
    return summary


def build(store: xr.Dataset, summary: Summary, complete: bool = True, conf_level: float | None = None,
          path: Path | None = None) -> xr.Dataset:
    """The analysis dataset of a summary (see the module docstring for its variables); with the store's
    ``path``, also the SMAA-2 central weights and confidence factors (:mod:`engine.analysis.smaa`)."""
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
                            rank_value=np.arange(1, store.sizes["city"] + 1, dtype=np.int16),
                            city_name=("city", store["city_name"].values),
                            top_city=cities[top], top_city_other=cities[top])
    if summary.has_sobol:
        conf = float(conf_level or store.attrs.get("conf_level", 0.95))
        sens = _sobol(store, summary, conf)
        out = out.merge(sens)
        out.attrs.update(sens.attrs)
        # a rank that almost never moves has a tiny variance: its indices are unreliable and flagged
        st_conf = out["ST_conf"]
        if "rank" in plan.targets:
            rare = (out["rank_prob_max"] >= RARE) & ~out["constant"].sel(target="rank", drop=True)
            out["nearly_constant"] = rare
            st_conf = st_conf.where(~(rare & (out["target"] == "rank")))
            out.attrs["nearly_constant_share"] = RARE
        out.attrs["max_ST_conf"] = float(np.nanmax(st_conf.values))
    if path is not None and plan.n_nodes:
        from .smaa import smaa

        sm = smaa(Path(path), summary)
        out = out.merge(sm)
        out.attrs.update(sm.attrs)
    if summary.given is not None:
        given = _given(store, summary, float(conf_level or store.attrs.get("conf_level", 0.95)))
        out = out.merge(given)
        out.attrs.update(given.attrs)
    out.attrs.update(
        n_stability_scenarios=int(n_stab), n_scenarios=plan.n_scenarios, partial=int(not complete),
        design_kind=plan.kind,
        percentile_convention="R type 7 (numpy linear)", spec_hash=store.attrs["spec_hash"],
        description="rank stability (and Sobol sensitivity) of every city x field rank",
        title=f"rank stability{' and Sobol sensitivity' if summary.has_sobol else ''} of "
              f"{store.attrs.get('title', 'a rankstab sweep')}",
        summary=_summary_text(int(n_stab), summary.has_sobol, complete),
        Conventions=CONVENTIONS, date_created=datetime.now(UTC).isoformat(timespec="seconds"),
        source=f"rankstab {__version__} analysis of the store's scores and ranks",
    )
    return describe(out)


def _summary_text(n_stab: int, sobol: bool, complete: bool) -> str:
    """The ACDD ``summary`` of an analysis group."""
    text = (f"Distribution of every city's rank in every field over {n_stab:,} stability scenarios (percentiles, "
            f"top-k and rank probabilities, shifts from nominal, correlations with the nominal ranking)")
    if sobol:
        text += "; first-, total- (and second-) order Sobol' indices of ranks, scores and R-bar"
    return text + ("." if complete else "; PARTIAL: the completed scenarios only.")


def _sobol(store: xr.Dataset, summary: Summary, conf: float) -> xr.Dataset:
    plan = summary.plan
    groups = json.loads(store.attrs["factor_groups"])
    factors = list(store["factor"].values)
    grouped = len(groups) < len(factors)
    dim = "factor_group" if grouped else "factor"
    names = groups if grouped else factors
    n_c, n_f = plan.nominal_rank.shape
    targets = plan.targets
    res = {t: summary.sobol_result(t, conf) for t in targets}
    cf = ("city", "field")

    def stack(key: str, lead: int) -> np.ndarray:
        return np.stack([res[t][key].reshape(*res[t][key].shape[:lead], n_c, n_f) for t in targets])

    out = xr.Dataset({key: (("target", dim, *cf), stack(key, 1)) for key in ("S1", "ST", "S1_conf", "ST_conf")})
    out["constant"] = (("target", *cf), stack("constant", 0))
    if plan.second_order:
        for key in ("S2", "S2_conf") if plan.second_order_conf else ("S2",):
            out[key] = (("target", dim, f"{dim}_other", *cf), stack(key, 2))
    rb = summary.sobol_result("rbar", conf)
    for key in ("S1", "ST", "S1_conf", "ST_conf"):
        out[f"{key}_rbar"] = ((dim, "field"), rb[key])
    out = out.assign_coords({"target": list(targets), dim: names})
    if plan.second_order:
        out = out.assign_coords({f"{dim}_other": names})
    out.attrs.update(num_resamples=plan.num_resamples, conf_level=conf,
                     second_order_conf=int(plan.second_order and plan.second_order_conf),
                     sobol_targets=",".join(targets),
                     max_ST_conf=float(np.nanmax(out["ST_conf"].values)), sobol_dim=dim,
                     estimators="S1 Saltelli 2010, ST Jansen 1999, S2 as SALib; bootstrap over base samples")
    return out


def _given(store: xr.Dataset, summary: Summary, conf: float) -> xr.Dataset:
    """S1_given, delta (bias-reduced), their confs and delta's bootstrap bias per target x factor x city x
    field, and per factor x field for R-bar (see :mod:`engine.stats.given`)."""
    plan, given = summary.plan, summary.given
    n_c, n_f = plan.nominal_rank.shape
    res = given.result(plan.num_resamples, conf, plan.seed)
    keys = {"S1_given": "S1", "S1_given_conf": "S1_conf", "delta": "delta", "delta_conf": "delta_conf",
            "delta_bias": "delta_bias"}
    rbar = {"S1_given": "S1_given_rbar", "S1_given_conf": "S1_given_rbar_conf", "delta": "delta_rbar",
            "delta_conf": "delta_rbar_conf", "delta_bias": "delta_rbar_bias"}
    out = xr.Dataset()
    for name, key in keys.items():
        out[name] = (("target", "factor", "city", "field"),
                     np.stack([res[t][key].reshape(-1, n_c, n_f) for t in TARGETS]))
        out[rbar[name]] = (("factor", "field"), res["rbar"][key])
    out = out.assign_coords({"target": list(TARGETS), "factor": list(store["factor"].values),
                             "factor_bins": ("factor", given.n_bins)})
    out.attrs.update(
        given_num_resamples=plan.num_resamples, given_conf_level=conf,
        given_rank_class_width=given.sums["rank"].classes.width,
        given_score_classes=given.sums["score"].classes.K - 1, given_note=given.note,
        given_estimators="S1_given: Var(E[Y|bin])/Var(Y), binning estimator (Plischke 2010); delta: Borgonovo "
        "2007, histogram estimator (Plischke, Borgonovo & Smith 2013; ranks by their exact distributions), "
        "bias-reduced 2 delta_hat - mean(delta*); Poisson bootstrap of the scenarios")
    return out


def write_summary(path: Path, summary: Summary) -> None:
    """Build and write the analysis of a whole run's summary (what ``rankstab run`` does after the sweep)."""
    write_analysis(path, build(open_meta(path), summary, path=path))


def write_analysis(path: Path, out: xr.Dataset) -> None:
    """Write the group ``analysis`` whole or not at all: it is written as a group of its own beside the
    store, then renamed into it (the previous analysis is moved out first and deleted last)."""
    path = Path(path)
    staged = staging_path(path)
    written = False
    try:
        vlen_strings(out).to_zarr(str(staged), mode="w-", zarr_format=3, consolidated=False)
        written = True
        swap_in(staged, path / "analysis", trash=trash_path(path))
        consolidate(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot write the analysis ({(exc.strerror or str(exc)).lower()}); the previous "
                        f"analysis, if any, is unchanged; check space and permissions") from None
    finally:
        remove_tree(staged, settle=0.0 if written else 0.5)  # a failed write may still have writes in flight


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
