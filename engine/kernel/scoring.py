"""Score one methodology: the nominal one or the nominal one with overrides."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import UserError, did_you_mean
from ..methods import Methodology, nominal_methodology
from ..methods.weights import pca_weights
from .evaluate import Batch, Prepared, evaluate


def methodology_batch(prep: Prepared, m: Methodology) -> Batch:
    """A one-scenario batch for a methodology."""
    tree = prep.tree
    w = tree.nominal.copy()
    if m.weight_scheme == "equal":
        w[:] = 1.0
    elif m.weight_scheme == "pca":
        w = pca_weights(tree, prep.data(m.prep), w)
    elif m.weight_scheme != "nominal":
        raise UserError(f'weight_scheme "{m.weight_scheme}" is not built in; use nominal, equal or pca '
                        f"(named sets live in a spec's [weight_sets])")
    for node, value in m.weights.items():
        if node not in tree.nodes:
            raise UserError(f'weight.{node}: "{node}" is not an indicator, group or field'
                            f"{did_you_mean(node, tree.nodes)}")
        w[tree.nodes.index(node)] = value
    if m.exclude != "none":
        if m.exclude not in tree.nodes[: tree.n_ind]:
            raise UserError(f'exclude: "{m.exclude}" is not an indicator'
                            f"{did_you_mean(m.exclude, tree.nodes[: tree.n_ind])}")
        w[tree.nodes.index(m.exclude)] = 0.0
    zero = np.array([0])
    return Batch([m.prep], zero, [m.aggregation.name], zero, tree.renormalise(w[None]))


def score(ds: xr.Dataset, methodology: Methodology | None = None, settings: list[str] | None = None) -> xr.Dataset:
    """Scores and ranks (city, field) for one methodology; ``field`` ends with ``overall``."""
    m = methodology or nominal_methodology(ds)
    if settings:
        m = m.with_settings(settings)
    prep = Prepared(ds)
    s, r = evaluate(prep, methodology_batch(prep, m))
    fields = [*map(str, ds["field"].values), "overall"]
    out = xr.Dataset(
        {"score": (("city", "field"), s[0]), "rank": (("city", "field"), r[0])},
        coords={"city": ds["city"].values, "city_name": ("city", ds["city_name"].values), "field": fields},
    )
    out.attrs.update(dataset=ds.attrs.get("name", ""), **{k: str(v) for k, v in m.as_mapping().items()})
    return out
