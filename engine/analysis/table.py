"""The concise text summary of an analysis that ``rankstab run`` and ``rankstab analyze`` print."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .stability import RARE

TABLE_VARIABLES = ("nominal_rank", "rank_median", "rank_q05", "rank_q95", "prob_top", "city_name", "constant",
                   "nearly_constant", "ST", "rbar_mean")


def table_variables(result: xr.Dataset) -> xr.Dataset:
    """The variables :func:`summary_table` reads (and every attribute), loaded: an analysis group opened
    lazily need not be read whole to print its table."""
    return result[[v for v in TABLE_VARIABLES if v in result.data_vars]].load()


def summary_table(result: xr.Dataset, store: xr.Dataset | None = None, n: int = 10) -> str:
    """A concise text summary: the overall ranking's stability and, for Sobol runs, what drives it."""
    lines = []
    field = "overall"
    res = result.sel(field=field)
    order = np.argsort(res["nominal_rank"].values, kind="stable")[:n]
    sens = "ST" in result and "rank" in result["target"].values
    head = f"{'city':<18} {'nominal':>7} {'median':>7} {'5-95 %':>11} {'P(top3)':>8}"
    lines.append(f"rank stability, field {field} ({result.attrs['n_stability_scenarios']:,} scenarios"
                 f"{', PARTIAL' if result.attrs.get('partial') else ''}):")
    lines.append(head + ("  main driver (ST of rank)" if sens else ""))
    for c in order:
        r = res.isel(city=c)
        row = (f"{str(r['city_name'].values):<18.18} {int(r['nominal_rank']):>7} {float(r['rank_median']):>7.1f} "
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
