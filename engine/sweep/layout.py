"""The store layout of a spec: coordinates, inputs, the nominal scenario and empty per-scenario arrays."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr

from .. import __version__
from ..data import data_hash
from ..design import auto_chunk, decode, nominal_row, weight_schemes
from ..kernel import Prepared, evaluate, shared
from ..spec import Spec
from ..stats.rankhist import dense_fits
from ..store import CHOICE_VARS, CONVENTIONS, STRING, VARIABLES, BigArray, city_column, create, describe


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"rankstab": __version__, "python": sys.version.split()[0]}
    for pkg in ("numpy", "xarray", "zarr", "dask", "distributed", "SALib", "numba", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "unknown"
    return out


@dataclass
class Nominal:
    """The nominal scenario, computed through the same decode path as every other scenario."""

    score: np.ndarray  # (city, field)
    rank: np.ndarray
    choices: dict[str, str]  # its discrete choices (the constant value of every choice not varied)


def nominal(spec: Spec, prep: Prepared, schemes: np.ndarray) -> Nominal:
    dec = decode(spec, prep.tree, nominal_row(spec)[None], schemes)
    s, r = evaluate(prep, dec.batch)
    return Nominal(s[0], r[0], {k: str(v[0]) for k, v in dec.choices.items()})


def build_layout(spec: Spec, chunk: int, nom: Nominal, prep: Prepared) -> tuple[xr.Dataset, list[BigArray]]:
    """The store layout: small variables (coordinates, inputs, nominal) as an eager Dataset, and the
    per-scenario arrays as empty zarr arrays that the tasks fill chunk by chunk."""
    ds, tree = spec.ds, prep.tree
    n, n_c = spec.n_scenarios, ds.sizes["city"]
    fields = [*map(str, ds["field"].values), "overall"]
    n_f = len(fields)
    n_chunks = -(-n // chunk)
    sc = ("scenario",)
    big = [
        BigArray("score", (*sc, "city", "field"), (n, n_c, n_f), "float32", np.nan, chunk),
        BigArray("rank", (*sc, "city", "field"), (n, n_c, n_f), "int16", 0, chunk),
        BigArray("rbar", (*sc, "field"), (n, n_f), "float32", np.nan, chunk),
        BigArray("weight", (*sc, "node"), (n, len(tree.nodes)), "float64", np.nan, chunk),
        BigArray("design", (*sc, "factor"), (n, len(spec.factors)), "float64", np.nan, chunk),
        BigArray("block", sc, (n,), STRING, "", chunk),
        BigArray("sample", sc, (n,), "int64", -1, chunk),
        BigArray("chunk_done", ("chunk",), (n_chunks,), "int8", 0, 1),
        BigArray("chunk_rank_count", ("chunk", "city", "field", "rank_value"), (n_chunks, n_c, n_f, n_c), "int32", 0,
                 1),
    ]
    dense = dense_fits(n_c, n_f)  # large indices: no per-chunk histograms (see rank_count_layout below)
    if not dense:
        big = [b for b in big if b.name != "chunk_rank_count"]
    if spec.store != "full":
        big = [b for b in big if b.name != "score"]
    if spec.store == "summary":
        big = [b for b in big if b.name != "rank"]
    varied = varied_choices(spec)
    for name in CHOICE_VARS:
        fill = "" if name in varied else nom.choices[name]  # constant when not varied: the fill value
        big.append(BigArray(name, sc, (n,), STRING, fill, chunk))

    tpl = xr.Dataset({
        "nominal_score": (("city", "field"), nom.score),
        "nominal_rank": (("city", "field"), nom.rank),
        "value": ds["value"].reindex(field=fields).reset_coords(drop=True),
    })
    if dense:
        tpl["rank_count"] = (("city", "field", "rank_value"), np.zeros((n_c, n_f, n_c), dtype=np.int64))
    if "denominator_value" in ds:
        tpl["denominator_value"] = ds["denominator_value"].reset_coords(drop=True)
    coords = {c: ds[c] for c in ds.coords if ds[c].dims and ds[c].dims[0] in ("city", "indicator", "group",
                                                                                "denominator")}
    units = [*map(str, ds["group"].values), "", "overall"]
    f_ = spec.factors
    coords.update({
        "field": fields, "field_name": ("field", [*map(str, ds["field_name"].values), "Overall composite"]),
        "field_weight": ("field", [*map(float, ds["field_weight"].values), np.nan]),
        "node": tree.nodes, "node_level": ("node", tree.node_level()),
        "node_parent": ("node", [units[p] for p in tree.parent]), "node_nominal_weight": ("node", tree.nominal),
        "factor": [f.name for f in f_], "factor_kind": ("factor", [f.kind for f in f_]),
        "factor_group": ("factor", [f.group for f in f_]), "factor_node": ("factor", [f.node for f in f_]),
        "factor_range": ("factor", [f.p for f in f_]), "factor_choices": ("factor", ["|".join(f.choices) for f in f_]),
        "factor_nominal": ("factor", [f.nominal for f in f_]),
        "factor_probabilities": ("factor", ["|".join(f"{q:.17g}" for q in f.probabilities) for f in f_]),
        "factor_distribution": ("factor", ["discrete" if f.discrete else f.distribution for f in f_]),
        "factor_shape": ("factor", [f.shape if f.dirichlet else np.nan for f in f_]),
        "chunk": np.arange(n_chunks), "rank_value": np.arange(1, n_c + 1, dtype=np.int16),
    })
    tpl = tpl.assign_coords(coords)
    groupings = [c for c in ds.attrs.get("city_groupings", "").split(",") if c]
    tpl = describe(tpl, {"value": _value_attrs(ds), **{c: city_column(c) for c in groupings}})
    d = spec.design
    tpl.attrs.update(self_description(spec, ds, n))
    tpl.attrs.update(
        spec_toml=spec.text, spec_hash=spec.hash, spec_name=spec.name, spec_source=spec.source,
        design_kind=d.kind, design_n=d.n, second_order=int(d.second_order),
        second_order_conf=int(d.second_order and d.second_order_conf), sobol_targets=",".join(d.sobol_targets),
        seed=d.seed, sampler=d.sampler,
        n_scenarios=n, chunk=chunk, n_chunks=n_chunks, store_mode=spec.store, block_size=spec.block_size,
        factor_groups=json.dumps(spec.groups), num_resamples=d.num_resamples, conf_level=d.conf_level,
        nominal_in_space=int(spec.nominal_in_space),
        dataset=spec.dataset_ref, data_hash=data_hash(ds), synthetic=int(ds.attrs.get("synthetic", 0)),
        dataset_attrs=json.dumps({k: (int(v) if isinstance(v, bool | np.integer) else v)
                                  for k, v in ds.attrs.items()}),
        versions=json.dumps(_versions()), rankstab_version=__version__,
        created=tpl.attrs["date_created"], complete=0, run_id=uuid.uuid4().hex,
    )
    tpl.attrs["rank_count_layout"] = "dense" if dense else "band"  # engine.stats.rankhist
    return tpl, big


def self_description(spec: Spec, ds: xr.Dataset, n: int) -> dict:
    """The store's ACDD/CF global attributes: what it is, where it came from, when it was made."""
    d, now = spec.design, datetime.now(UTC).isoformat(timespec="seconds")
    title = ds.attrs.get("title") or spec.dataset_ref
    design = f"{'Sobol' if d.kind == 'sobol' else 'Monte Carlo'} design, {n:,} scenarios"
    synthetic = " The input data are SYNTHETIC (see the dataset's description)." if ds.attrs.get("synthetic") else ""
    return {
        "title": f"rankstab scenario sweep of {title}: {spec.name}",
        "summary": f"Scores and ranks of {ds.sizes['city']} cities in {ds.sizes['field']} fields and overall under "
                   f"{design} of methodological choices (spec {spec.name}: {spec.description or 'no description'})."
                   f"{synthetic} The analysis group holds rank stability and Sobol' sensitivity.",
        "Conventions": CONVENTIONS,
        "source": f"rankstab {__version__} (composite-index scenario and sensitivity engine), spec {spec.source}",
        "history": f"{now} created by rankstab {__version__} from spec {spec.source}",
        "date_created": now,
        "product_version": __version__,
        "keywords": "composite indicator, ranking, uncertainty analysis, sensitivity analysis, Sobol indices",
        "references": str(ds.attrs.get("source", "")),
    }


def _value_attrs(ds: xr.Dataset) -> dict:
    """``value`` is in each indicator's unit: a ``units`` attribute only when they all share one."""
    units = {str(u) for u in ds["indicator_unit"].values} if "indicator_unit" in ds.coords else {""}
    return {**VARIABLES["value"], **({"units": units.pop()} if len(units) == 1 and "" not in units else {})}


def varied_choices(spec: Spec) -> list[str]:
    """The choice variables some factor varies (the others are constant and written at creation)."""
    kinds = {f.kind for f in spec.factors}
    return [name for name in CHOICE_VARS if ("exclude" if name == "excluded" else name) in kinds]


def create_store(spec: Spec, path: Path) -> None:
    prep = shared(spec.ds)  # as the checks prepared it
    schemes = weight_schemes(spec, prep.tree, prep.data(spec.nominal.prep))
    chunk = auto_chunk(spec, spec.ds.sizes["city"], spec.ds.sizes["field"])
    create(path, *build_layout(spec, chunk, nominal(spec, prep, schemes), prep))
