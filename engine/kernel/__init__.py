"""The kernel: scores and ranks of a batch of scenarios at once (``evaluate``), competition ranks
(``ranking``) and the score of one methodology (``scoring``)."""

from .evaluate import METHODS, Batch, Prepared, evaluate, levels, scores_only, shared
from .ranking import competition_rank

__all__ = ["METHODS", "Batch", "Prepared", "competition_rank", "evaluate", "levels", "scores_only", "shared"]
