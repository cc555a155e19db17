"""Imputations of missing values.

``stage = "raw"`` options fill raw (denominated) values before outlier treatment and normalisation;
``stage = "normalised"`` options fill normalised values at the end of the preparation. Add one with a
decorated function in this file taking ``(ds, x)``, x being (city, field, indicator) with NaN where missing.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import UserError, did_you_mean
from .numerics import quiet
from .registry import Registry

IMPUTATIONS = Registry("imputation")


@IMPUTATIONS.register("none", stage="raw")
def none(ds: xr.Dataset, x: np.ndarray) -> np.ndarray:
    """Missing values stay missing (aggregation skips them, renormalising the weights)."""
    return x


@IMPUTATIONS.register("group_mean", stage="raw")
def group_mean(ds: xr.Dataset, x: np.ndarray, *, column: str = "") -> np.ndarray:
    """The mean of the same indicator over cities of the same group of a city grouping column (the
    dataset's only grouping when ``column`` is left out)."""
    return impute_group_mean(x, _grouping(ds, column))


@IMPUTATIONS.register("field_mean", stage="raw")
def field_mean(ds: xr.Dataset, x: np.ndarray) -> np.ndarray:
    """The mean of the same indicator over all cities in the field."""
    return impute_group_mean(x, np.zeros(x.shape[0], dtype=int))


@IMPUTATIONS.register("city_mean", stage="normalised")
def city_mean(ds: xr.Dataset, x: np.ndarray) -> np.ndarray:
    """The mean of the city's available sibling indicators (same parent) in that field, normalised."""
    return impute_city_mean(ds, x)


def _grouping(ds: xr.Dataset, column: str) -> np.ndarray:
    groupings = [g for g in ds.attrs.get("city_groupings", "").split(",") if g]
    col = column or (groupings[0] if len(groupings) == 1 else None)
    if col is None:
        raise UserError(f"imputation group_mean needs a grouping column: group_mean:COLUMN with one of "
                        f"{', '.join(groupings) or '(none: add columns to the city table)'}")
    if col not in groupings:
        raise UserError(f'imputation group_mean: "{col}" is not a city grouping column'
                        f"{did_you_mean(col, groupings)}; choose one of: {', '.join(groupings) or '(none)'}")
    return np.unique(ds[col].values, return_inverse=True)[1]


def impute_group_mean(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Fill NaN with the mean of the same indicator over cities of the same group (NaN if none)."""
    out = x.copy()
    for g in np.unique(groups):
        rows = groups == g
        block = x[rows]
        with quiet():
            mean = np.nanmean(block, axis=0)
        out[rows] = np.where(np.isnan(block), mean[None], block)
    return out


def impute_city_mean(ds: xr.Dataset, x: np.ndarray) -> np.ndarray:
    """Fill NaN with the mean of the city's available sibling indicators (same parent) in that field."""
    out = x.copy()
    parents = ds["indicator_parent"].values
    for p in np.unique(parents):
        cols = parents == p
        with quiet():
            mean = np.nanmean(x[:, :, cols], axis=2)
        out[:, :, cols] = np.where(np.isnan(x[:, :, cols]), mean[:, :, None], x[:, :, cols])
    return out
