"""Mergeable statistics: what the sweep's tasks accumulate chunk by chunk and the analysis finishes.

``summary`` holds rank histograms, pairwise counts and exact value distributions; ``sobol`` the sums of
SALib's Sobol' estimators with their bootstrap resamples. Both merge by addition, so any split of the
scenarios over workers gives the same result."""
