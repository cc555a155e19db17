"""CF/ACDD attributes of every variable and coordinate of a store and its ``analysis`` group.

One table for both groups: a name means one thing wherever it appears. Each entry gives ``long_name``,
``units`` where the variable is a number ("1" = dimensionless: ranks, counts, indices, weights,
probabilities, normalised scores; no ``units`` for strings and flags) and a ``description``; flags also
carry ``flag_values``/``flag_meanings``. ``results/README.md`` documents the same names.
"""

from __future__ import annotations

import xarray as xr

CONVENTIONS = "CF-1.10, ACDD-1.3"


def _v(long_name: str, units: str | None, description: str, **extra) -> dict:
    out = {"long_name": long_name, "description": description, **extra}
    if units is not None:
        out["units"] = units
    return out


_CHOICE = "the scenario's {}, spelled as in the spec; constant (the nominal choice) when no factor varies it"
_FLAG = {"flag_values": [0, 1]}

VARIABLES: dict[str, dict] = {
    # per scenario
    "score": _v("composite score", "1", "score of each city in each field and in the overall composite under the "
                "scenario's methodology; dimensionless, on the scale of the scenario's normalisation; NaN = no score"),
    "rank": _v("rank", "1", "rank of each city in each field and overall: 1 = best, ties share the lowest rank "
               "(competition ranking, 1224); 0 = no score. Read it as ds[\"rank\"]: ds.rank is xarray's method"),
    "rbar": _v("mean absolute rank shift from nominal (R-bar)", "1",
               "mean over cities of |rank - nominal_rank| in the scenario, per field"),
    "weight": _v("effective weight", "1", "weight of every indicator, group and field in the scenario, "
                 "renormalised within its parent (siblings sum to 1); 0 = excluded"),
    "design": _v("design point", "1", "the scenario's row of the unit-hypercube design, one value in [0, 1) per "
                 "factor, decoded into its methodology"),
    "block": _v("Saltelli block", None, "A, B, AB_<factor or group> or BA_<factor or group> for a Sobol design "
                "(the row's place in its block of base sample `sample`); MC for Monte Carlo"),
    "sample": _v("base-sample index", "1", "index of the scenario's base sample (its Saltelli block); the "
                 "scenario index for Monte Carlo"),
    "normalisation": _v("normalisation", None, _CHOICE.format("normalisation (method:parameters)")),
    "aggregation": _v("aggregation", None, _CHOICE.format("aggregation") + "; group/field/overall methods "
                      "joined by / when the levels differ"),
    "outlier": _v("outlier treatment", None, _CHOICE.format("outlier treatment")),
    "imputation": _v("imputation", None, _CHOICE.format("imputation of missing values")),
    "excluded": _v("excluded indicator or group", None, "the indicator or group left out (weight 0, siblings "
                   "renormalised) in the scenario; none = nothing left out"),
    "weight_scheme": _v("weight scheme", None, _CHOICE.format("weight scheme (nominal, equal, pca or a named "
                                                              "weight set)")),
    # per chunk
    "chunk_done": _v("chunk completion flag", None, "1 once every per-scenario array of the chunk is written "
                     "(set last); --resume recomputes the chunks still at 0", **_FLAG,
                     flag_meanings="pending done"),
    "chunk_rank_count": _v("rank count of the chunk", "1", "number of the chunk's stability scenarios in which "
                           "each city takes each rank (all scenarios for Monte Carlo, the A and B rows for Sobol)"),
    # inputs and the nominal scenario
    "value": _v("indicator value", None, "the input data as loaded, in each indicator's unit (coordinate "
                "indicator_unit); NaN = missing; the overall row is NaN"),
    "denominator_value": _v("denominator value", None, "the denominators indicators are divided by (per city)"),
    "nominal_score": _v("nominal composite score", "1", "score under the nominal methodology (see score)"),
    "nominal_rank": _v("nominal rank", "1", "rank under the nominal methodology (see rank)"),
    "rank_count": _v("rank count", "1", "number of stability scenarios in which each city takes each rank "
                     "(all scenarios for Monte Carlo, the A and B rows for Sobol); the sum of chunk_rank_count"),
    # coordinates of the store
    "scenario": _v("scenario index", "1", "scenario number: row of the design"),
    "chunk": _v("chunk index", "1", "chunk of scenarios written by one task (attribute chunk = its length)"),
    "city": _v("city code", None, "the dataset's city code; the display name is city_name"),
    "city_name": _v("city name", None, "display name of the city; select by it with "
                    "ds.swap_dims(city=\"city_name\").sel(city_name=...)"),
    "country": _v("country", None, "country of the city"),
    "field": _v("field code", None, "the dataset's fields, then overall (the composite of all fields)"),
    "field_name": _v("field name", None, "display name of the field"),
    "field_weight": _v("nominal field weight", "1", "the field's weight in the overall composite; NaN for overall"),
    "indicator": _v("indicator code", None, "the dataset's indicator code"),
    "indicator_name": _v("indicator name", None, "display name of the indicator"),
    "indicator_parent": _v("parent group of the indicator", None, "code of the group the indicator belongs to; "
                           "empty = it enters the field score directly"),
    "indicator_weight": _v("nominal indicator weight", "1", "the indicator's weight within its parent"),
    "indicator_denominator": _v("denominator of the indicator", None, "the denominator the indicator is divided "
                                "by; empty = none"),
    "indicator_unit": _v("unit of the indicator", None, "the indicator's unit as given in the dataset's metadata; "
                         "empty = not given"),
    "direction": _v("direction of the indicator", None, "+1 = higher is better, -1 = lower is better (the "
                    "indicator is reversed before aggregation)", flag_values=[-1, 1],
                    flag_meanings="lower_is_better higher_is_better"),
    "group": _v("group code", None, "the dataset's indicator groups"),
    "group_name": _v("group name", None, "display name of the group"),
    "group_parent": _v("parent group of the group", None, "code of the enclosing group; empty = the field score"),
    "group_weight": _v("nominal group weight", "1", "the group's weight within its parent"),
    "denominator": _v("denominator code", None, "the dataset's denominators (columns of its denominators table)"),
    "node": _v("node of the index tree", None, "every indicator, then every group, then every field: the "
               "elements that carry a weight"),
    "node_level": _v("level of the node", None, "indicator, group or field"),
    "node_parent": _v("parent of the node", None, "the enclosing group; empty = the field score; overall = the "
                      "composite"),
    "node_nominal_weight": _v("nominal weight of the node", "1", "the node's weight within its parent under the "
                              "nominal methodology"),
    "factor": _v("factor", None, "an uncertain input of the spec (its [[factor]] name)"),
    "factor_kind": _v("kind of the factor", None, "weight, normalisation, aggregation, outlier, imputation, "
                      "exclude or weight_scheme"),
    "factor_group": _v("factor group", None, "a group of factors whose Sobol' indices are computed together "
                       "(the spec's factor groups; each factor is its own group when none are given)"),
    "factor_node": _v("node of a weight factor", None, "the node whose weight the factor perturbs; empty for "
                      "other kinds"),
    "factor_range": _v("relative range of a weight factor", "1", "p: the node's weight is multiplied by a "
                       "uniform number in [1 - p, 1 + p]; 0 for discrete factors"),
    "factor_choices": _v("choices of a discrete factor", None, "the factor's choices joined by |; empty for "
                         "weight factors"),
    "factor_nominal": _v("nominal choice of the factor", None, "the choice of the nominal methodology (it may be "
                         "outside factor_choices: see the attribute nominal_in_space)"),
    "factor_probabilities": _v("choice probabilities of a discrete factor", None, "the probability of each of "
                               "factor_choices, joined by |; empty = equal probabilities or a weight factor"),
    "factor_distribution": _v("distribution of the factor", None, "uniform (a weight factor's U[1 - p, 1 + p]), "
                              "dirichlet (the weights of a sibling set drawn jointly) or discrete"),
    "factor_shape": _v("Gamma shape of a Dirichlet weight", "1", "alpha K w: the Gamma shape of the weight's "
                       "variate, divided by its set's sum (concentration alpha, K siblings, nominal share w); "
                       "NaN for other factors"),
    "rank_value": _v("rank", "1", "rank 1 ... number of cities: the axis of rank counts and rank probabilities"),
    # rank counts and probabilities in the band layout (large indices; attribute rank_count_layout = band)
    "rank_count_values": _v("rank count over bands", "1", "the counts of rank_count, each (city, field) cell's "
                            "band of ranks after the other: cell (c, f) took rank rank_count_first + i exactly "
                            "rank_count_values[rank_count_start + i] times, 0 <= i < rank_count_width"),
    "rank_count_first": _v("first rank of the band", "1", "best rank the city took in the field (0: never "
                           "ranked); the first rank counted in rank_count_values"),
    "rank_count_start": _v("start of the band", "1", "index in rank_count_values of the cell's first count"),
    "rank_count_width": _v("width of the band", "1", "number of ranks from the city's best to its worst rank in "
                           "the field (0: never ranked)"),
    "rank_prob_values": _v("rank probability over bands", "1", "rank_prob in the band layout: laid out as "
                           "rank_count_values, indexed by rank_prob_first, rank_prob_start and rank_prob_width"),
    "rank_prob_first": _v("first rank of the band", "1", "best rank the city took in the field (0: never ranked)"),
    "rank_prob_start": _v("start of the band", "1", "index in rank_prob_values of the cell's first probability"),
    "rank_prob_width": _v("width of the band", "1", "number of ranks from the city's best to its worst rank"),
    "rank_prob_max": _v("largest rank probability", "1", "share of the stability scenarios in which the city "
                        "takes its most frequent rank"),
    # the analysis group: coordinates
    "target": _v("output of the Sobol' indices", None, "rank or score: the per-city output the indices refer to"),
    "top": _v("k of top-k", "1", "number of leading ranks: prob_top is the probability of a rank <= k"),
    "top_city": _v("leading city", None, "one of the cities ranked highest overall under the nominal methodology"),
    "top_city_other": _v("other leading city", None, "the second city of a pair of leading cities (see top_city)"),
    "factor_other": _v("other factor", None, "the second factor of a second-order Sobol' index"),
    "factor_group_other": _v("other factor group", None, "the second factor group of a second-order Sobol' index"),
    # the analysis group: rank stability
    "rank_mean": _v("mean rank", "1", "mean rank over the stability scenarios"),
    "rank_median": _v("median rank", "1", "median rank over the stability scenarios (type-7 percentile)"),
    "rank_q05": _v("5th percentile of the rank", "1", "5th percentile of the rank over the stability scenarios "
                   "(type 7, as R and NumPy)"),
    "rank_q95": _v("95th percentile of the rank", "1", "95th percentile of the rank over the stability scenarios "
                   "(type 7, as R and NumPy)"),
    "rank_interval_width": _v("width of the 5-95 % rank interval", "1", "rank_q95 - rank_q05"),
    "rank_median_shift": _v("median rank shift from nominal", "1", "|nominal_rank - rank_median|"),
    "rank_abs_shift": _v("mean absolute rank shift from nominal", "1", "mean over the stability scenarios of "
                         "|rank - nominal_rank|"),
    "prob_top": _v("probability of a top-k rank", "1", "share of the stability scenarios in which the city's rank "
                   "is k or better"),
    "rank_prob": _v("rank probability", "1", "share of the stability scenarios in which the city takes each rank "
                    "(rank_count divided by its sum over rank_value)"),
    "pair_prob": _v("probability of ranking above", "1", "share of the stability scenarios in which top_city "
                    "ranks strictly above top_city_other"),
    "rbar_mean": _v("mean R-bar", "1", "mean over the stability scenarios of rbar, the mean absolute rank shift "
                    "from nominal over cities"),
    "rbar_median": _v("median R-bar", "1", "median over the stability scenarios of rbar (type 7)"),
    "rbar_q05": _v("5th percentile of R-bar", "1", "5th percentile over the stability scenarios of rbar (type 7)"),
    "rbar_q95": _v("95th percentile of R-bar", "1", "95th percentile over the stability scenarios of rbar "
                   "(type 7)"),
    "spearman_mean": _v("mean Spearman correlation with the nominal ranking", "1", "mean over the stability "
                        "scenarios of the Spearman correlation between the scenario's and the nominal ranks"),
    "spearman_q05": _v("5th percentile of the Spearman correlation with the nominal ranking", "1",
                       "over the stability scenarios (type 7)"),
    "spearman_q95": _v("95th percentile of the Spearman correlation with the nominal ranking", "1",
                       "over the stability scenarios (type 7)"),
    "kendall_mean": _v("mean Kendall tau-b with the nominal ranking", "1", "mean over the stability scenarios of "
                       "Kendall's tau-b between the scenario's and the nominal ranks"),
    "kendall_q05": _v("5th percentile of Kendall tau-b with the nominal ranking", "1",
                      "over the stability scenarios (type 7)"),
    "kendall_q95": _v("95th percentile of Kendall tau-b with the nominal ranking", "1",
                      "over the stability scenarios (type 7)"),
    # the analysis group: SMAA-2
    "central_weight": _v("SMAA-2 central weight", "1", "mean weight of every node (renormalised within its "
                         "parent) over the stability scenarios in which the city ranks first in the field "
                         "(ties included); NaN = the city never ranks first there"),
    "confidence_factor": _v("SMAA-2 confidence factor", "1", "probability that the city ranks first in the field "
                            "with its central weights, every other choice as sampled (estimated over the first "
                            "confidence_samples stability scenarios); NaN = the city never ranks first there"),
    # the analysis group: given-data sensitivity (Monte Carlo runs)
    "S1_given": _v("first-order sensitivity index from given data", "1", "Var(E[Y|X bin])/Var(Y) of the output "
                   "(target) over the run's scenarios, the factor cut into factor_bins bins (Plischke 2010)"),
    "S1_given_conf": _v("confidence half-width of S1_given", "1", "half-width of the Poisson-bootstrap confidence "
                        "interval (attribute given_conf_level) over scenarios"),
    "S1_given_rbar": _v("S1_given of R-bar", "1", "S1_given with rbar (per field) as the output"),
    "S1_given_rbar_conf": _v("confidence half-width of S1_given_rbar", "1", "bootstrap half-width, as "
                             "S1_given_conf"),
    "delta": _v("Borgonovo's delta", "1", "moment-independent importance 1/2 E_X sum |P(Y) - P(Y|X)| of the factor "
                "for the output (target), bias-reduced (delta + delta_bias is the plain estimate)"),
    "delta_conf": _v("confidence half-width of delta", "1", "half-width of the Poisson-bootstrap confidence "
                     "interval (attribute given_conf_level) over scenarios"),
    "delta_bias": _v("bootstrap bias of delta", "1", "mean of the bootstrap deltas minus the plain estimate; "
                     "subtracted from the plain estimate to give delta"),
    "delta_rbar": _v("Borgonovo's delta of R-bar", "1", "delta with rbar (per field) as the output"),
    "delta_rbar_conf": _v("confidence half-width of delta_rbar", "1", "bootstrap half-width, as delta_conf"),
    "delta_rbar_bias": _v("bootstrap bias of delta_rbar", "1", "as delta_bias"),
    "factor_bins": _v("bins of the factor", "1", "number of bins the factor was cut into for S1_given and delta: "
                      "a discrete factor's choices, or equal-probability bins of a weight factor's design value"),
    # the analysis group: Sobol' sensitivity
    "S1": _v("first-order Sobol' index", "1", "share of the output's variance due to the factor alone "
             "(Saltelli 2010 estimator)"),
    "ST": _v("total-order Sobol' index", "1", "share of the output's variance due to the factor and all its "
             "interactions (Jansen 1999 estimator)"),
    "S2": _v("second-order Sobol' index", "1", "share of the output's variance due to the interaction of two "
             "factors alone (SALib's estimator)"),
    "S1_conf": _v("confidence half-width of S1", "1", "half-width of the bootstrap confidence interval of S1 "
                  "(attribute conf_level) over base samples"),
    "ST_conf": _v("confidence half-width of ST", "1", "half-width of the bootstrap confidence interval of ST "
                  "(attribute conf_level) over base samples"),
    "S2_conf": _v("confidence half-width of S2", "1", "half-width of the bootstrap confidence interval of S2 "
                  "(attribute conf_level) over base samples"),
    "S1_rbar": _v("first-order Sobol' index of R-bar", "1", "S1 with rbar (per field) as the output"),
    "ST_rbar": _v("total-order Sobol' index of R-bar", "1", "ST with rbar (per field) as the output"),
    "S1_conf_rbar": _v("confidence half-width of S1_rbar", "1", "bootstrap half-width, as S1_conf"),
    "ST_conf_rbar": _v("confidence half-width of ST_rbar", "1", "bootstrap half-width, as ST_conf"),
    "constant": _v("constant output flag", None, "1 where the output never changes across the scenarios: its "
                   "Sobol' indices are undefined (NaN)", **_FLAG, flag_meanings="varies constant"),
    "nearly_constant": _v("nearly constant rank flag", None, "1 where the city holds one rank in at least the "
                          "share nearly_constant_share (an attribute) of the stability scenarios but not all: its "
                          "rank's indices are unreliable", **_FLAG, flag_meanings="varies nearly_constant"),
}


def describe(ds: xr.Dataset, extra: dict[str, dict] | None = None) -> xr.Dataset:
    """``ds`` with the table's attributes (and ``extra``, for dataset-defined names) on every variable and
    coordinate it names; attributes already set (e.g. a dataset's own ``units``) win."""
    table = {**VARIABLES, **(extra or {})}
    out = ds.copy()
    for name, var in out.variables.items():
        if name in table:
            var.attrs = {**table[name], **var.attrs}
    return out


def city_column(name: str) -> dict:
    """Attributes of a grouping column of the dataset's city table (e.g. ``iso3``)."""
    return _v(f"city {name}", None, f"column {name} of the dataset's city table")
