"""The analysis of a run: rank stability (``stability``), Sobol indices finished from the sweep's sums,
written as the store's ``analysis`` group (``analyze``); the printed summary (``table``); and the
remove-one sensitivity of a dataset (``remove_one``)."""

from ..store.rankprob import rank_prob
from .analyze import (
           analyze,
           analyze_cli,
           build,
           open_analysis,
           summarise_store,
           write_analysis,
           write_summary,
)
from .stability import RARE, TOPS, hist_quantile, rank_statistics
from .table import summary_table, table_variables

__all__ = ["RARE", "TOPS", "analyze", "analyze_cli", "build", "hist_quantile", "open_analysis", "rank_prob",
           "rank_statistics",
           "summarise_store", "summary_table", "table_variables", "write_analysis", "write_summary"]
