"""What a report reads: the analysis group and the store's small variables, loaded into memory once.

:meth:`Context.load` checks that the run is complete (or analysed as a partial Monte Carlo run), runs the
analysis first when the store has none or a stale one, and then keeps everything the figures, the tables
and the sentences need. The store is opened without Dask and without its per-scenario index: a report
reads only the small variables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import UserError, per_caller, resume_command
from ..store import done_chunks, open_meta
from ..store.rankprob import rank_prob

CONF_LIMIT = 0.2  # a Sobol index whose bootstrap half-width exceeds this is marked unreliable
RARE = 0.99  # a rank held in at least this share of scenarios is "nearly constant" (as engine.analysis)


@dataclass
class Context:
    """Everything the report needs, loaded into memory (the analysis and the store's small variables)."""

    path: Path
    attrs: dict
    a: xr.Dataset                      # the analysis (loaded; S2 dropped)
    city_name: dict[str, str]
    fields: list[str]                  # fields shown (the single field of a one-field dataset is 'overall')
    field_label: dict[str, str]
    factors: xr.Dataset                # factor coordinates of the store
    node_weight: dict[str, float]
    sobol: bool
    sdim: str | None                   # 'factor' or 'factor_group'
    given: bool                        # sensitivity from given data (Monte Carlo runs): S1_given and delta
    dataset: dict = field(default_factory=dict)
    node_names: list[str] = field(default_factory=list)   # the index tree's weighted nodes (the store's node)
    node_parent: list[str] = field(default_factory=list)  # '' = the field score, 'overall' = the composite
    node_level: list[str] = field(default_factory=list)   # indicator, group or field

    @classmethod
    def load(cls, path: Path) -> Context:
        store = open_meta(path)  # UserError when missing or not a store
        attrs = dict(store.attrs)
        done = done_chunks(path)
        complete = bool(attrs.get("complete")) and bool(done.all())
        a = open_analysis(path)
        stale = a is None or a.attrs.get("spec_hash") != attrs.get("spec_hash") or a.attrs.get(
            "n_scenarios") != attrs.get("n_scenarios") or bool(
            complete and a.attrs.get("partial"))
        if not complete and (stale or not a.attrs.get("partial")):
            partial = per_caller(f"`rankstab analyze --partial {path}`", f"`engine.analyze({str(path)!r}, partial=True)`")
            raise UserError(f"{path} is incomplete ({int(done.sum())} of {done.size} chunks done); finish it with "
                            f"{resume_command(path)} (or {partial} to report the completed part of a Monte Carlo run)")
        if stale:
            from ..analysis import analyze  # imports SciPy: only when there is something to analyse

            analyze(path)
            a = open_analysis(path)
        a = a.drop_vars([v for v in ("S2", "S2_conf") if v in a]).load()
        names = [str(c) for c in store["city_name"].values] if "city_name" in store else None
        city_name = dict(zip(map(str, store["city"].values), names or map(str, store["city"].values), strict=True))
        flds = [str(f) for f in store["field"].values]
        fnames = [str(f) for f in store["field_name"].values] if "field_name" in store.coords else flds
        label = {f: (f"{f}: {n}" if n and n != f else f) for f, n in zip(flds, fnames, strict=True)}
        label["overall"] = "overall"
        shown = flds
        if len(flds) == 2 and flds[-1] == "overall":
            single = flds[0]
            same = np.array_equal(rank_prob(a, single), rank_prob(a, "overall"))
            if same:
                shown = ["overall"]
                label["overall"] = f"overall (= {single}, the only field)"
        fcoords = [c for c in store.coords if c.startswith("factor")]
        factors = store[fcoords].reset_coords().load() if "factor" in store.dims else xr.Dataset()
        node_weight, nodes = {}, {}
        if "node" in store.dims and "node_nominal_weight" in store.coords:
            node_weight = dict(zip(map(str, store["node"].values), store["node_nominal_weight"].values.tolist(),
                                   strict=True))
            nodes = {k: [str(v) for v in store[c].values] for k, c in (
                ("node_names", "node"), ("node_parent", "node_parent"), ("node_level", "node_level")) if c in store.coords}
        sobol = attrs.get("design_kind") == "sobol" and "ST_rbar" in a
        sdim = a.attrs.get("sobol_dim") if sobol else None
        given = (not sobol and "delta" in a and "S1_given" in a and a.sizes.get("factor", 0) > 0
                 and "rank" in a["target"].values)
        try:
            dataset = json.loads(attrs.get("dataset_attrs", "{}"))
        except ValueError:
            dataset = {}
        return cls(path, attrs, a, city_name, shown, label, factors, node_weight, sobol, sdim, given, dataset, **nodes)

    # helpers -------------------------------------------------------------------------------------
    @property
    def synthetic(self) -> bool:
        return str(self.attrs.get("synthetic", "0")) in ("1", "True", "true")

    @property
    def has_rank_sobol(self) -> bool:
        return self.sobol and "ST" in self.a and "rank" in self.a["target"].values

    @property
    def n_fields(self) -> int:
        """Fields of the dataset, 'overall' not counted."""
        return len([f for f in self.a["field"].values if f != "overall"])

    def name(self, city) -> str:
        return self.city_name.get(str(city), str(city))

    def rank_prob(self, fld: str, cities: np.ndarray | None = None) -> np.ndarray:
        """P(rank = r) (city, rank) in a field for the given city indices (default all): the analysis' dense
        ``rank_prob`` or its band layout (large indices)."""
        return rank_prob(self.a, fld, cities)

    def order(self, fld: str) -> np.ndarray:
        """City indices by nominal rank in a field (unscored cities last), ties by median rank."""
        nom = self.a["nominal_rank"].sel(field=fld).values.astype(float)
        nom = np.where(nom <= 0, np.inf, nom)
        med = np.nan_to_num(self.a["rank_median"].sel(field=fld).values, nan=np.inf)
        return np.lexsort((med, nom))

    def sens(self, var: str, fld: str, target: str = "rank") -> np.ndarray:
        """(city, factor) array of ST/S1/..._conf of a target in a field."""
        v = self.a[var].sel(target=target, field=fld).transpose("city", self.sdim)
        return v.values

    def constant(self, fld: str, target: str = "rank") -> np.ndarray:
        return self.a["constant"].sel(target=target, field=fld).values.astype(bool)

    @property
    def rare_share(self) -> float:
        return float(self.a.attrs.get("nearly_constant_share", RARE))

    def nearly_constant(self, fld: str) -> np.ndarray:
        """Ranks that move but are held in at least ``rare_share`` of the scenarios (their variance is tiny,
        so their Sobol indices are noise): the analysis's ``nearly_constant`` when it has one."""
        if "nearly_constant" in self.a:
            return self.a["nearly_constant"].sel(field=fld).values.astype(bool)
        held = self.rank_prob(fld).max(axis=1) >= self.rare_share
        return held & ~self.constant(fld)

    def unreliable(self, fld: str) -> np.ndarray:
        """(city, factor): rank Sobol indices not to be trusted (nearly constant rank, or a wide interval)."""
        bad = (self.sens("ST_conf", fld) > CONF_LIMIT) | (self.sens("S1_conf", fld) > CONF_LIMIT)
        return (bad | self.nearly_constant(fld)[:, None]) & ~self.constant(fld)[:, None]

    def factor_names(self) -> list[str]:
        return [str(f) for f in self.a[self.sdim].values] if self.sdim else []

    # sensitivity from given data (Monte Carlo runs) -------------------------------------------------
    @property
    def smaa(self) -> bool:
        return "confidence_factor" in self.a and "central_weight" in self.a

    @property
    def conf_level(self) -> float:
        """The confidence level of the run's intervals (Sobol or given data)."""
        return float(self.a.attrs.get("given_conf_level" if self.given else "conf_level", 0.95))

    def given_names(self) -> list[str]:
        return [str(f) for f in self.a["factor"].values] if self.given else []

    def given_sens(self, var: str, fld: str, target: str = "rank") -> np.ndarray:
        """(city, factor) array of delta/S1_given/..._conf of a target in a field (Monte Carlo runs)."""
        return self.a[var].sel(target=target, field=fld).transpose("city", "factor").values

    def fixed(self, fld: str) -> np.ndarray:
        """Cities whose rank in a field is the same in every scenario (from the rank probabilities)."""
        return self.a["rank_prob_max"].sel(field=fld).values >= 1.0

    def near_fixed(self, fld: str) -> np.ndarray:
        """Cities whose rank moves but is the same in at least ``rare_share`` of the scenarios."""
        held = self.a["rank_prob_max"].sel(field=fld).values
        return (held >= self.rare_share) & (held < 1.0)

    def given_order(self, fld: str = "overall") -> np.ndarray:
        """Factor indices by decreasing delta of R-bar in a field (ties by S1_given)."""
        d = np.nan_to_num(self.a["delta_rbar"].sel(field=fld).values, nan=-1)
        s1 = np.nan_to_num(self.a["S1_given_rbar"].sel(field=fld).values, nan=-1)
        return np.lexsort((-s1, -d))

    def factor_phrase(self, name: str) -> str:
        """'the choice of aggregation', 'the weight of P1', 'the group “indicator weights” (49 factors)'."""
        f = self.factors
        if not f or "factor" not in f.dims:
            return name
        if self.sdim == "factor_group":
            members = [str(x) for x, g in zip(f["factor"].values, f["factor_group"].values, strict=True) if g == name]
            if len(members) != 1:
                return f"the factor group “{name}” ({len(members)} factors)"
            name = members[0]
        if name not in f["factor"].values:
            return name
        row = f.sel(factor=name)
        kind = str(row["factor_kind"].values) if "factor_kind" in row else ""
        node = str(row["factor_node"].values) if "factor_node" in row else ""
        if kind == "weight":
            return f"the weight of {node}" if node else f"the weight {name}"
        return f"the choice of {name}" if kind else name


def open_analysis(path: Path) -> xr.Dataset | None:
    """The analysis group, or None when there is none (as engine.analysis.open_analysis, without importing
    the analysis module and SciPy, which would double the time of a report, and without Dask)."""
    import zarr

    try:
        return xr.open_zarr(str(path), group="analysis", consolidated=False, chunks=None)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError, zarr.errors.NodeNotFoundError):
        return None


