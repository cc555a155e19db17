"""The index hierarchy as arrays: indicators -> groups -> field score -> overall composite."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr


@dataclass(frozen=True)
class Tree:
    """Nodes are the indicators, then the groups, then the fields (the order of ``weight(node)``).

    ``parent[n]`` indexes the aggregation units: groups ``0..G-1``, the field score ``G`` (ROOT) and the
    overall composite ``G+1`` (OVERALL). ``steps`` lists the units in bottom-up order with their child
    nodes, so aggregating along it computes every group, then each field score.
    """

    nodes: list[str]
    kind: np.ndarray  # 0 indicator, 1 group, 2 field
    parent: np.ndarray
    nominal: np.ndarray
    n_ind: int
    n_grp: int
    n_fld: int
    steps: list[tuple[int, np.ndarray]]

    @property
    def root(self) -> int:
        return self.n_grp

    @property
    def overall(self) -> int:
        return self.n_grp + 1

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> Tree:
        ind = [str(c) for c in ds["indicator"].values]
        grp = [str(c) for c in ds["group"].values]
        fld = [str(c) for c in ds["field"].values]
        gidx = {g: k for k, g in enumerate(grp)}
        n_grp = len(grp)

        def pid(code: str) -> int:
            return gidx[code] if code else n_grp

        parent = np.array([pid(str(p)) for p in ds["indicator_parent"].values]
                          + [pid(str(p)) for p in ds["group_parent"].values]
                          + [n_grp + 1] * len(fld), dtype=np.int64)
        nominal = np.concatenate([ds["indicator_weight"].values, ds["group_weight"].values,
                                  ds["field_weight"].values]).astype(np.float64)
        kind = np.array([0] * len(ind) + [1] * n_grp + [2] * len(fld))
        depth = {}

        def d(g: int) -> int:
            if g not in depth:
                p = parent[len(ind) + g]
                depth[g] = 0 if p == n_grp else 1 + d(int(p))
            return depth[g]

        order = sorted(range(n_grp), key=lambda g: -d(g))
        steps = [(g, np.flatnonzero(parent == g)) for g in [*order, n_grp]]
        return cls(ind + grp + fld, kind, parent, nominal, len(ind), n_grp, len(fld), steps)

    def renormalise(self, w: np.ndarray) -> np.ndarray:
        """Divide weights (scenario, node) by their sum within each parent, bottom-up; a group whose
        children all have zero weight (e.g. its only indicator excluded) gets zero weight itself.
        Row by row in a fixed order, so a scenario's weights never depend on the rest of its batch."""
        out = np.array(w, dtype=np.float64, copy=True)
        units = [*self.steps, (self.overall, np.flatnonzero(self.parent == self.overall))]
        for unit, cols in units:
            block = out[:, cols]
            total = block.sum(axis=1, keepdims=True)
            out[:, cols] = np.divide(block, total, out=np.zeros_like(block), where=total > 0)
            if unit < self.n_grp:
                out[:, self.n_ind + unit] *= total[:, 0] > 0
        return out

    def effective(self, w: np.ndarray) -> np.ndarray:
        """Each indicator's weight in its field score: the product of renormalised weights along its path
        (weights (S, node) already renormalised) -> (S, indicator)."""
        eff = w[:, : self.n_ind].copy()
        p = self.parent[: self.n_ind].copy()
        while True:
            inner = p < self.n_grp
            if not inner.any():
                return eff
            node = self.n_ind + p[inner]
            eff[:, inner] *= w[:, node]
            p[inner] = self.parent[node]

    def node_level(self) -> list[str]:
        return ["indicator" if k == 0 else "group" if k == 1 else "field" for k in self.kind]

    def heights(self) -> np.ndarray:
        """Each node's level counted from the bottom: indicators 1, a group one above its highest child,
        the fields one above the highest child of the field score."""
        h = np.ones(len(self.nodes), dtype=np.int64)
        for unit, children in self.steps:  # bottom-up
            top = int(h[children].max()) + 1 if len(children) else 2
            if unit < self.n_grp:
                h[self.n_ind + unit] = top
            else:
                h[self.n_ind + self.n_grp:] = top
        return h

    def level_labels(self, names: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Each node's level name: ``names[height - 1]`` (bottom-up, e.g. indicator, pillar, sub-index,
        index; a dataset's ``levels``) where given, else indicator / group / field, group levels named
        "level H" when there are several."""
        h = self.heights()
        group_levels = set(h[self.n_ind:self.n_ind + self.n_grp].tolist())
        out = []
        for k, height in zip(self.kind, h, strict=True):
            if height <= len(names):
                out.append(str(names[height - 1]))
            elif k == 1 and len(group_levels) > 1:
                out.append(f"level {height}")
            else:
                out.append(("indicator", "group", "field")[k])
        return out
