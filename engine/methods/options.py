"""Methodologies: the option kinds, ``KEY=VALUE`` settings and the ``Methodology`` of one scenario.

Settings (the same in ``rankstab score --set`` and in the ``[nominal]`` table of datasets and specs)::

    normalisation = <name>[:p1,p2]   see normalise.py, e.g. minmax:1,100
    aggregation   = <name>           see aggregate.py, e.g. geometric
    outlier       = <name>[:p]       see outliers.py, e.g. winsorise:5
    imputation    = <name>[:column]  see impute.py, e.g. group_mean:EurAsia_group
    denominate    = true | false
    weight_scheme = nominal | equal | pca | <a set named in the spec's [weight_sets]>
    exclude       = none | <indicator code>
    weight.<node> = <positive number>    (override one nominal weight)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr

from ..errors import UserError, did_you_mean
from .aggregate import AGGREGATIONS
from .impute import IMPUTATIONS
from .normalise import NORMALISATIONS
from .outliers import OUTLIERS
from .registry import Option

OPTION_KINDS = {"normalisation": NORMALISATIONS, "aggregation": AGGREGATIONS,
                "outlier": OUTLIERS, "imputation": IMPUTATIONS}
KEYS = (*OPTION_KINDS, "denominate", "weight_scheme", "exclude", "weights")


def parse_option(kind: str, text: str | Option) -> Option:
    """Parse ``name[:p1,p2]`` for an option kind, filling default parameters."""
    if isinstance(text, Option):
        return text
    return OPTION_KINDS[kind].parse(text)


@dataclass(frozen=True)
class Prep:
    """Everything that turns raw values into normalised indicator values."""

    normalisation: Option
    outlier: Option
    imputation: Option
    denominate: bool = True


@dataclass(frozen=True)
class Methodology:
    """One complete methodology (one scenario)."""

    normalisation: Option = Option("minmax", (0.0, 100.0))
    aggregation: Option = Option("arithmetic")
    outlier: Option = Option("none")
    imputation: Option = Option("none")
    denominate: bool = True
    weight_scheme: str = "nominal"
    exclude: str = "none"
    weights: dict = field(default_factory=dict)

    @property
    def prep(self) -> Prep:
        return Prep(self.normalisation, self.outlier, self.imputation, self.denominate)

    @classmethod
    def from_mapping(cls, mapping: dict, where: str = "nominal") -> Methodology:
        """Build from a TOML table / dict of settings; unknown keys are errors."""
        kw: dict = {}
        for key, value in mapping.items():
            if key not in KEYS:
                raise UserError(f'{where}: unknown key "{key}"{did_you_mean(key, KEYS)}; '
                                f"allowed: {', '.join(KEYS)}")
            if key in OPTION_KINDS:
                kw[key] = parse_option(key, value)
            elif key == "denominate":
                kw[key] = _bool(value, f"{where}.denominate")
            elif key == "weights":
                if not isinstance(value, dict):
                    raise UserError(f"{where}.weights must be a table of node = weight")
                kw[key] = {str(k): _weight(v, f"{where}.weights.{k}") for k, v in value.items()}
            else:
                kw[key] = str(value)
        return cls(**kw)

    def with_settings(self, settings: list[str]) -> Methodology:
        """Apply ``KEY=VALUE`` overrides (``weight.CODE=W`` sets one weight)."""
        m = self
        for item in settings:
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key:
                raise UserError(f'--set "{item}": write KEY=VALUE, e.g. --set normalisation=zscore:10,2')
            if key.startswith(("weight.", "weights.")):
                code = key.split(".", 1)[1]
                m = replace(m, weights={**m.weights, code: _weight(value, f"--set {key}")})
            else:
                m = _merge(m, key, value)
        return m

    def as_mapping(self) -> dict:
        out = {k: str(getattr(self, k)) for k in OPTION_KINDS}
        out.update(denominate=self.denominate, weight_scheme=self.weight_scheme, exclude=self.exclude)
        if self.weights:
            out["weights"] = dict(self.weights)
        return out


def _merge(base: Methodology, key: str, value: str) -> Methodology:
    return replace(base, **{key: getattr(Methodology.from_mapping({key: value}, where="--set"), key)})


def _bool(value, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1"):
        return True
    if str(value).lower() in ("false", "no", "0"):
        return False
    raise UserError(f'{what} is "{value}"; use true or false')


def _weight(value, what: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise UserError(f'{what} is "{value}", not a number; weights are positive numbers') from None
    if not np.isfinite(w) or w <= 0:
        raise UserError(f"{what} is {value}; weights must be positive (use exclude to drop an indicator)")
    return w


def nominal_methodology(ds: xr.Dataset, overrides: dict | None = None) -> Methodology:
    """The dataset's nominal methodology, optionally updated by a mapping."""
    from ..data import nominal_settings

    mapping = {**nominal_settings(ds), **(overrides or {})}
    return Methodology.from_mapping(mapping, where=f"{ds.attrs.get('name', 'dataset')} [nominal]")
