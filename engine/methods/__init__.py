"""Methodology options and the data preparation they imply.

One registry per option kind; adding an option is one decorated function in its kind's module:

* ``normalise.py``  NORMALISATIONS: scale each indicator column over cities
* ``aggregate.py``  AGGREGATIONS: combine weighted children at the group, field and overall levels
* ``outliers.py``   OUTLIERS: treat outliers of the raw values
* ``impute.py``     IMPUTATIONS: fill missing values (on raw or on normalised values)

and around them:

* ``registry.py``   Registry (register, lookup with did-you-mean, ``name:p1,p2`` parsing) and Option
* ``options.py``    the option kinds, the settings keys, Prep and Methodology (``--set`` and ``[nominal]``)
* ``prepare.py``    the preparation: denominate -> impute -> outliers -> orient + normalise -> impute
* ``numerics.py``   NaN-aware helpers (warnings silenced, average ranks)
"""

from .aggregate import AGGREGATIONS, levels
from .impute import IMPUTATIONS, impute_city_mean, impute_group_mean
from .normalise import NORMALISATIONS, normalise
from .numerics import average_rank
from .options import KEYS, OPTION_KINDS, Methodology, Prep, nominal_methodology, parse_option
from .outliers import OUTLIERS, kurt, passes, skew, treat_outliers
from .prepare import denominate, prepare
from .registry import Entry, Option, Registry

__all__ = ["AGGREGATIONS", "IMPUTATIONS", "KEYS", "NORMALISATIONS", "OPTION_KINDS", "OUTLIERS", "Entry",
           "Methodology", "Option", "Prep", "Registry", "average_rank", "denominate", "impute_city_mean",
           "impute_group_mean", "kurt", "levels", "nominal_methodology", "normalise", "parse_option", "passes",
           "prepare", "skew", "treat_outliers"]
