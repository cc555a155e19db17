"""Data-driven weight schemes (the named schemes ``nominal`` and ``equal`` need no code: see
:func:`engine.design.weight_schemes`)."""

from __future__ import annotations

import numpy as np

from ..data import Tree


def pca_weights(tree: Tree, x: np.ndarray, nominal: np.ndarray) -> np.ndarray:
    """OECD/JRC PCA weights: within each parent with two or more indicators, the squared loadings of the
    first principal component of the indicators' correlation matrix (city x field rows pooled, rows with
    missing values dropped), scaled to sum to one. Group and field weights stay nominal."""
    w = nominal.copy()
    n_ind = tree.n_ind
    flat = x.reshape(-1, n_ind)
    for unit in np.unique(tree.parent[:n_ind]):
        cols = np.flatnonzero(tree.parent[:n_ind] == unit)
        if len(cols) < 2:
            continue
        block = flat[:, cols]
        block = block[~np.isnan(block).any(axis=1)]
        corr = np.corrcoef(block, rowvar=False)
        vals, vecs = np.linalg.eigh(corr)
        load = vecs[:, -1] ** 2
        w[cols] = load / load.sum()
    return w
