"""Remove-one analysis (COINr's ``remove_elements``): the nominal methodology without each indicator and
each group in turn (weight zero, siblings renormalised), evaluated in one kernel batch. Each element is
labelled with its level's name from the dataset's metadata (``levels``, e.g. pillar, sub-index)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data import embedded_names, level_names, load_dataset
from ..kernel import Batch, Prepared, evaluate
from ..kernel.scoring import methodology_batch
from ..methods import Methodology, nominal_methodology


def remove_one(source: str) -> xr.Dataset:
    """Mean absolute rank change per field, and the city that moves most, for every removed element."""
    ds, m = _load(source)
    prep = Prepared(ds)
    base = methodology_batch(prep, m)
    tree = prep.tree
    elements = tree.nodes[: tree.n_ind + tree.n_grp]
    w = np.repeat(base.weights, len(elements), axis=0)
    raw = w.copy()
    raw[np.arange(len(elements)), np.arange(len(elements))] = 0.0
    batch = Batch(base.preps, np.zeros(len(elements), int), base.methods, np.zeros(len(elements), int),
                  tree.renormalise(raw))
    _, nominal = evaluate(prep, base)
    _, ranks = evaluate(prep, batch)
    shift = np.abs(ranks.astype(int) - nominal.astype(int))
    mover = shift.argmax(axis=1)
    cities = ds["city"].values
    fields = [*map(str, ds["field"].values), "overall"]
    return xr.Dataset(
        {"mean_abs_rank_change": (("element", "field"), shift.mean(axis=1)),
         "max_rank_change": (("element", "field"), shift.max(axis=1)),
         "max_mover": (("element", "field"), cities[mover])},
        coords={"element": elements,
                "element_level": ("element", tree.level_labels(level_names(ds))[: len(elements)]),
                "field": fields},
        attrs={"dataset": ds.attrs.get("name", ""), "methodology": str(m.as_mapping())},
    )


def _load(source: str) -> tuple[xr.Dataset, Methodology]:
    if source.endswith(".toml") or source not in embedded_names():
        from pathlib import Path

        from ..spec import SCENARIOS, Spec

        if source.endswith(".toml") or (SCENARIOS / f"{source}.toml").is_file() and not Path(source).exists():
            spec = Spec.from_toml(source)
            return spec.ds, spec.nominal
    ds = load_dataset(source)
    return ds, nominal_methodology(ds)


def remove_one_table(result: xr.Dataset) -> str:
    field = "overall"
    r = result.sel(field=field).sortby("mean_abs_rank_change", ascending=False)
    lines = [f"remove-one analysis of {result.attrs['dataset']} (field {field}): element, level, mean |rank change|,"
             f" largest move",
             f"{'element':<16} {'level':<10} {'mean':>6}  largest"]
    for e in r["element"].values:
        row = r.sel(element=e)
        lines.append(f"{e:<16} {str(row['element_level'].values):<10} {float(row['mean_abs_rank_change']):>6.2f}  "
                     f"{row['max_mover'].values} ({int(row['max_rank_change'])})")
    return "\n".join(lines)
