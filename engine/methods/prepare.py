"""The data preparation: raw indicator values -> normalised values, per (field, indicator) column over cities.

Order: denominate -> impute (``stage = "raw"`` imputations, e.g. group/field mean) -> treat outliers ->
orient (x * direction) and normalise -> impute (``stage = "normalised"``, e.g. city mean).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .impute import IMPUTATIONS
from .normalise import normalise
from .options import Prep
from .outliers import OUTLIERS


def prepare(ds: xr.Dataset, prep: Prep) -> np.ndarray:
    """Normalised indicator values (city, field, indicator), NaN where missing."""
    x = np.array(ds["value"].values, dtype=np.float64)
    if prep.denominate:
        x = denominate(ds, x)
    imp = IMPUTATIONS[prep.imputation.name]
    normalised_stage = imp.props.get("stage", "raw") == "normalised"
    if not normalised_stage:
        x = imp(ds, x, params=prep.imputation.params)
    x = OUTLIERS[prep.outlier.name](x, params=prep.outlier.params)
    x = normalise(x * ds["direction"].values[None, None, :], prep.normalisation)
    if normalised_stage:
        x = imp(ds, x, params=prep.imputation.params)
    return x


def denominate(ds: xr.Dataset, x: np.ndarray) -> np.ndarray:
    """Divide indicators that have a denominator (e.g. population) by the city's denominator value."""
    den = ds["indicator_denominator"].values
    if not (den != "").any():
        return x
    cols = list(ds["denominator"].values)
    out = x.copy()
    for i, d in enumerate(den):
        if d:
            out[:, :, i] = x[:, :, i] / ds["denominator_value"].values[:, cols.index(d)][:, None]
    return out
