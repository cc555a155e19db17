"""Exact rank histograms count(city, field, rank) stored over the band of ranks each city takes.

A dense histogram has cities x fields x cities cells (2000 x 21 x 2000 = 84M at the large size), but a
city's ranks in a field usually span a narrow band. :class:`RankHistogram` keeps, per (city, field) cell,
the counts of ranks ``first .. first + width - 1`` only, concatenated cell after cell (a CSR layout:
``start`` (cells + 1) offsets into ``counts``). Counts are exact integers, histograms of disjoint rows
merge by addition, and every statistic of the analysis (type-7 percentiles, mean, top-k probabilities,
mean shift from nominal, rank probabilities) is computed from it exactly. Its size is the sum of the
band widths: at most the dense size (when every city takes every rank), usually a small fraction.

Rank 0 (a city without a score) is not counted, as in the dense histogram.
"""

from __future__ import annotations

import numba
import numpy as np

INT32_MAX = 2**31 - 1
PENDING_ROWS = 256  # rows held before counting them in one pass over the bands (see RankHistogram) ...
PENDING_BYTES = 32 * 2**20  # ... or fewer, when they would take more than this
SPILL_RATIO = 16  # ranks outside their band are set aside until they reach 1/16 of the counts
SLACK = 0.25  # bands widened by counting new ranks get this share of their width more (zeros; see add_ranks)
DENSE_CELLS = 2**22  # stores keep the dense count(city, field, rank) up to this many cells (see ``dense_fits``)


def dense_fits(n_cities: int, n_fields: int) -> bool:
    """Whether a store keeps the dense ``rank_count(city, field, rank_value)`` (and per-chunk histograms):
    cities x fields x cities at most ``DENSE_CELLS`` (up to 446 cities with 20 fields + overall)."""
    return n_cities * n_fields * n_cities <= DENSE_CELLS


class RankHistogram:
    """Counts of ranks 1..``n_ranks`` per cell of a (city, field) grid, over each cell's band of ranks.

    ``first`` (cells,) int32: the band's first rank (0 for a cell with no counts); ``start`` (cells + 1,)
    int64: where each cell's counts begin in ``counts`` (the band width is ``start[i + 1] - start[i]``);
    ``counts`` int32 (int64 once a count could pass 2^31 - 1): the counts of ranks first, first + 1, ... of
    every cell, cell after cell (stores keep them as int64).

    :meth:`add_ranks` holds the rows it is given (a copy) until about ``PENDING_ROWS`` of them wait, then
    counts them in one pass, cell by cell (a cell's band stays in cache while its rows pass): each pass
    touches every band once (at the large size the bands are ~100 MB), so counting a few hundred rows at a
    time instead of one chunk's few dozen makes it several times cheaper. Ranks outside their cell's band
    are set aside (as cell and rank) rather than widening the bands at once: the bands are widened (every
    count moved) only when those set aside reach 1/``SPILL_RATIO`` of the counts, or when the histogram
    is read. Reading ``first``, ``start`` or ``counts`` (or any method) counts everything first.
    """

    def __init__(self, shape: tuple[int, int], n_ranks: int, first: np.ndarray, start: np.ndarray,
                 counts: np.ndarray, bound: int | None = None) -> None:
        self.shape, self.n_ranks = tuple(shape), int(n_ranks)
        self._first, self._start, self._counts = first, start, counts
        # an upper bound of every count: int32 counts are widened before they could overflow
        self._bound = int(counts.max(initial=0)) if bound is None else int(bound)
        self._pending: list[np.ndarray] = []  # [a buffer (row, cell)] whose first _pending_rows rows are not counted yet
        self._pending_rows = 0
        self._spill: list[np.ndarray] = []  # ranks outside their band, as cell * (n_ranks + 1) + rank
        self._n_spill = 0

    @property
    def first(self) -> np.ndarray:
        self._flush()
        return self._first

    @property
    def start(self) -> np.ndarray:
        self._flush()
        return self._start

    @property
    def counts(self) -> np.ndarray:
        self._flush()
        return self._counts

    def __repr__(self) -> str:
        return f"RankHistogram(shape={self.shape}, n_ranks={self.n_ranks}, values={self.counts.size})"

    @classmethod
    def empty(cls, n_cities: int, n_fields: int, n_ranks: int | None = None, dtype=np.int32) -> RankHistogram:
        cells = n_cities * n_fields
        return cls((n_cities, n_fields), n_cities if n_ranks is None else n_ranks, np.zeros(cells, np.int32),
                   np.zeros(cells + 1, np.int64), np.zeros(0, dtype), 0)

    @classmethod
    def of(cls, ranks: np.ndarray, n_ranks: int | None = None) -> RankHistogram:
        """The histogram of int ranks (row, city, field)."""
        out = cls.empty(ranks.shape[1], ranks.shape[2], n_ranks)
        out.add_ranks(ranks)
        return out

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> RankHistogram:
        """From dense counts (city, field, rank 1..R), each cell's band trimmed to its first and last non-zero."""
        n_c, n_f, n_r = dense.shape
        flat = np.asarray(dense, np.int64).reshape(n_c * n_f, n_r)
        nz = flat != 0
        has = nz.any(axis=1)
        lo = np.where(has, nz.argmax(axis=1), 0)
        hi = np.where(has, n_r - nz[:, ::-1].argmax(axis=1), 0)
        bound = int(flat.max(initial=0))
        out = cls.empty(n_c, n_f, n_r, np.int32 if bound <= INT32_MAX else np.int64)
        out._reband(np.where(has, lo + 1, 0).astype(np.int32), np.where(has, hi, 0).astype(np.int32))
        _gather_dense(flat, out.first, out.start, out.counts)
        out._bound = bound
        return out

    # ------------------------------------------------------------------------------------ building
    @property
    def width(self) -> np.ndarray:
        return np.diff(self.start)

    @property
    def last(self) -> np.ndarray:
        """Each cell's last rank (0 for an empty cell)."""
        w = self.width
        return np.where(w > 0, self.first + w - 1, 0).astype(np.int32)

    @property
    def nbytes(self) -> int:
        return self.first.nbytes + self.start.nbytes + self.counts.nbytes

    def _reband(self, first: np.ndarray, last: np.ndarray) -> None:
        """Move the counts into bands [first, last] per cell (each covering the current band)."""
        width = np.where(first > 0, last - first + 1, 0).astype(np.int64)
        start = np.zeros(len(width) + 1, np.int64)
        np.cumsum(width, out=start[1:])
        counts = np.zeros(int(start[-1]), self._counts.dtype)
        _move(self._first, self._start, self._counts, first, start, counts)
        self._first, self._start, self._counts = first, start, counts

    def _cover(self, first: np.ndarray, last: np.ndarray, slack: float = 0.0) -> None:
        """Widen the bands to cover [first, last] per cell (0 = nothing to cover), if they do not already;
        a band that must widen grows by ``slack`` times its new width more on that side (within 1..n_ranks),
        so that a stream of chunks rarely moves the counts again (see ``trimmed``)."""
        old_first, w = self._first, np.diff(self._start)
        old_last = np.where(w > 0, old_first + w - 1, 0)
        f = np.where(old_first == 0, first, np.where(first == 0, old_first, np.minimum(old_first, first)))
        la = np.maximum(old_last, last)
        grow_lo, grow_hi = (f > 0) & ((old_first == 0) | (f < old_first)), la > old_last
        if not (grow_lo.any() or grow_hi.any()):
            return
        if slack:
            pad = np.ceil(slack * (la - f + 1)).astype(np.int64)
            f = np.where(grow_lo, np.maximum(1, f - pad), f)
            la = np.where(grow_hi, np.minimum(self.n_ranks, la + pad), la)
        self._reband(f.astype(np.int32), la.astype(np.int32))

    def add_ranks(self, ranks: np.ndarray) -> None:
        """Count int ranks (row, city, field): held (copied) until enough rows wait, then counted in one
        pass (see the class docstring). A band that must widen takes some slack (zero counts at its ends:
        ``trimmed`` removes them), so that a stream of chunks seldom moves the counts."""
        ranks = np.asarray(ranks)
        cells = len(self._first)
        per_row = int(np.prod(ranks.shape[1:])) if ranks.ndim > 1 else 0
        if per_row != cells:
            raise ValueError(f"ranks have {per_row} cells, the histogram {cells}")
        if not len(ranks):
            return
        rows = ranks.reshape(len(ranks), cells)
        room = max(1, min(PENDING_ROWS, PENDING_BYTES // max(1, cells * rows.itemsize)))  # rows held at most
        for a in range(0, len(rows), room):
            part = rows[a:a + room]
            buf = self._pending[0] if self._pending else None
            if buf is not None and (buf.dtype != part.dtype or self._pending_rows + len(part) > len(buf)):
                self._count_pending()
                if buf.dtype != part.dtype or len(part) > len(buf):
                    buf = None
            if buf is None:  # one buffer, reused: rows are copied in
                buf = np.empty((max(room, len(part)), cells), part.dtype)
                self._pending = [buf]
            buf[self._pending_rows:self._pending_rows + len(part)] = part
            self._pending_rows += len(part)
            if self._pending_rows >= room:
                self._count_pending()

    def _count_pending(self) -> None:
        """Count the pending rows into the bands; set aside those outside their band (see the class)."""
        if not self._pending_rows:
            return
        r2 = self._pending[0][: self._pending_rows]
        self._pending_rows = 0  # the buffer is kept for the next rows
        self._widen(len(r2))
        if not self._counts.size:  # the first rows set the bands
            first, last = _extent(r2)
            self._cover(first, last, SLACK)
        spill = _scatter(r2, self._first, self._start, self._counts, self.n_ranks + 1)
        if len(spill):
            self._spill.append(spill)
            self._n_spill += len(spill)
            if self._n_spill * SPILL_RATIO > self._counts.size:
                self._fold_spill()

    def _fold_spill(self) -> None:
        """Widen the bands to cover the ranks set aside (with slack) and count them."""
        if not self._spill:
            return
        keys = np.concatenate(self._spill)
        self._spill, self._n_spill = [], 0
        first, last = _key_extent(keys, len(self._first), self.n_ranks + 1)
        self._cover(first, last, SLACK)
        _count_keys(keys, self._first, self._start, self._counts, self.n_ranks + 1)

    def _widen(self, more: int) -> None:
        """Make room for ``more`` counts in a cell: int64 counts once int32 could overflow."""
        self._bound += more
        if self._bound > INT32_MAX and self._counts.dtype != np.int64:
            self._counts = self._counts.astype(np.int64)

    def _flush(self) -> None:
        """Count everything added (before the bands are read)."""
        self._count_pending()
        self._fold_spill()

    def merge(self, other: RankHistogram) -> RankHistogram:
        """Add another histogram of the same grid in place."""
        if other.shape != self.shape or other.n_ranks != self.n_ranks:
            raise ValueError("cannot merge rank histograms of different grids")
        self._flush()
        other._flush()
        self._widen(other._bound)
        self._cover(other.first, other.last)
        _move(other.first, other.start, other.counts, self.first, self.start, self.counts, add=True)
        return self

    def __eq__(self, other: object) -> bool:
        """Equal counts (however wide the bands holding them)."""
        if not isinstance(other, RankHistogram) or other.shape != self.shape or other.n_ranks != self.n_ranks:
            return False
        a, b = self.copy().trimmed(), other.copy().trimmed()
        return all(np.array_equal(x, y) for x, y in ((a.first, b.first), (a.start, b.start), (a.counts, b.counts)))

    def copy(self) -> RankHistogram:
        return RankHistogram(self.shape, self.n_ranks, self.first.copy(), self.start.copy(), self.counts.copy(),
                             self._bound)

    def __getstate__(self) -> dict:  # pickled (sent between processes): pending rows counted first
        self._flush()
        return dict(self.__dict__, _pending=[])

    def trimmed(self) -> RankHistogram:
        """The same counts with each band trimmed to its first and last non-zero count."""
        first, last = _trim(self.first, self.start, self.counts)
        out = RankHistogram.empty(*self.shape, self.n_ranks, self._counts.dtype)
        out._bound = self._bound
        out._reband(first, last)
        _move(self.first, self.start, self.counts, out.first, out.start, out.counts, add=True, clip=True)
        return out

    def dense(self, dtype=np.int64) -> np.ndarray:
        """Dense counts (city, field, rank 1..n_ranks)."""
        out = np.zeros((len(self.first), self.n_ranks), dtype)
        _to_dense(self.first, self.start, self.counts, out)
        return out.reshape(*self.shape, self.n_ranks)

    def rows(self, cells: np.ndarray) -> np.ndarray:
        """Dense counts (cell, rank) of the given flat cells (city * fields + field) only."""
        cells = np.asarray(cells, np.int64)
        out = np.zeros((len(cells), self.n_ranks), np.int64)
        _to_dense(self.first[cells], np.stack([self.start[cells], self.start[cells + 1]], 1).ravel(),
                  self.counts, out, pairs=True)
        return out

    # ------------------------------------------------------------------------------- plain arrays
    def export(self) -> dict:
        return {"shape": np.array(self.shape, np.int64), "n_ranks": self.n_ranks, "first": self.first,
                "start": self.start, "counts": self.counts, "bound": self._bound}

    @classmethod
    def from_export(cls, state: dict) -> RankHistogram:
        return cls(tuple(int(v) for v in state["shape"]), int(state["n_ranks"]), np.array(state["first"]),
                   np.array(state["start"]), np.array(state["counts"]), state.get("bound"))  # writable copies

    # --------------------------------------------------------------------------------- statistics
    def totals(self) -> np.ndarray:
        """Counted rows per cell (city, field)."""
        return _totals(self.start, self.counts).reshape(self.shape)

    def statistics(self, nominal: np.ndarray, quantiles: tuple[float, ...], tops: tuple[int, ...]) -> dict:
        """Per cell (city, field): ``total``, ``mean``, the type-7 ``quantiles`` (as
        ``np.percentile(ranks, 100 q)``; NaN for empty cells), ``top`` (cell, len(tops)) the share of
        rows ranked <= t, ``abs_shift`` the mean |rank - nominal| and ``max_prob`` the largest share."""
        nom = np.ascontiguousarray(nominal, np.int64).ravel()
        q = np.asarray(quantiles, np.float64)
        t = np.asarray(tops, np.int64)
        total, mean, qs, top, shift, pmax = _cell_stats(self.first, self.start, self.counts, nom, q, t)
        shape = self.shape
        return {"total": total.reshape(shape), "mean": mean.reshape(shape),
                "quantiles": [qs[:, i].reshape(shape) for i in range(len(q))],
                "top": top.reshape(*shape, len(t)), "abs_shift": shift.reshape(shape), "max_prob": pmax.reshape(shape)}

    def probabilities(self) -> np.ndarray:
        """The counts divided by their cell's total, band by band (float64, laid out as ``counts``)."""
        total = np.maximum(self.totals().ravel(), 1)
        return self.counts / np.repeat(total, self.width)




@numba.njit(cache=True, nogil=True)
def _extent(r2):  # pragma: no cover - compiled
    """First and last non-zero rank of every column of r2 (row, cell); 0, 0 for a column of zeros."""
    n_s, n = r2.shape
    first = np.zeros(n, np.int32)
    last = np.zeros(n, np.int32)
    for s in range(n_s):
        for c in range(n):
            v = np.int32(r2[s, c])
            if v > 0:
                if first[c] == 0 or v < first[c]:
                    first[c] = v
                if v > last[c]:
                    last[c] = v
    return first, last


@numba.njit(cache=True, nogil=True)
def _scatter(r2, first, start, counts, stride):  # pragma: no cover - compiled
    """Count r2 (row, cell) into the bands, cell by cell (its band stays in cache while its rows pass);
    return the ranks outside their cell's band as keys cell * stride + rank (not counted). One unsigned
    comparison per rank in the main pass; the few cells with ranks outside are passed again."""
    n_s, n = r2.shape
    outside = np.zeros(n, np.bool_)
    n_out = 0
    for c in range(n):
        lo = np.int64(first[c])
        width = np.uint64(start[c + 1] - start[c])
        base = start[c]
        for s in range(n_s):
            v = np.int64(r2[s, c])
            j = v - lo
            if np.uint64(j) < width:
                counts[base + j] += 1
            elif v > 0:
                n_out += 1
                outside[c] = True
    spill = np.empty(n_out, np.int64)
    k = 0
    if n_out:
        for c in np.flatnonzero(outside):
            lo = np.int64(first[c])
            width = np.uint64(start[c + 1] - start[c])
            for s in range(n_s):
                v = np.int64(r2[s, c])
                if v > 0 and np.uint64(v - lo) >= width:
                    spill[k] = c * stride + v
                    k += 1
    return spill


@numba.njit(cache=True, nogil=True)
def _key_extent(keys, n, stride):  # pragma: no cover - compiled
    """First and last rank per cell of keys cell * stride + rank (0, 0 for a cell without keys)."""
    first = np.zeros(n, np.int32)
    last = np.zeros(n, np.int32)
    for key in keys:
        c, v = key // stride, np.int32(key % stride)
        if first[c] == 0 or v < first[c]:
            first[c] = v
        if v > last[c]:
            last[c] = v
    return first, last


@numba.njit(cache=True, nogil=True)
def _count_keys(keys, first, start, counts, stride):  # pragma: no cover - compiled
    for key in keys:
        c, v = key // stride, key % stride
        counts[start[c] + v - first[c]] += 1


@numba.njit(cache=True, nogil=True)
def _move(first_a, start_a, counts_a, first_b, start_b, counts_b, add=False, clip=False):  # pragma: no cover
    """Copy (or add) the counts of bands a into bands b, each b band covering its a band (``clip``: b may be
    narrower where a holds zeros only)."""
    for c in range(len(first_a)):
        w = start_a[c + 1] - start_a[c]
        wb = start_b[c + 1] - start_b[c]
        for i in range(w):
            j = first_a[c] + i - first_b[c]
            if clip and (j < 0 or j >= wb):
                continue
            if add:
                counts_b[start_b[c] + j] += counts_a[start_a[c] + i]
            else:
                counts_b[start_b[c] + j] = counts_a[start_a[c] + i]


@numba.njit(cache=True, nogil=True)
def _trim(first, start, counts):  # pragma: no cover - compiled
    n = len(first)
    f = np.zeros(n, np.int32)
    la = np.zeros(n, np.int32)
    for c in range(n):
        for i in range(start[c + 1] - start[c]):
            if counts[start[c] + i]:
                r = first[c] + i
                if f[c] == 0:
                    f[c] = r
                la[c] = r
    return f, la


@numba.njit(cache=True, nogil=True)
def _gather_dense(flat, first, start, counts):  # pragma: no cover - compiled
    for c in range(len(first)):
        for i in range(start[c + 1] - start[c]):
            counts[start[c] + i] = flat[c, first[c] - 1 + i]


@numba.njit(cache=True, nogil=True)
def _to_dense(first, start, counts, out, pairs=False):  # pragma: no cover - compiled
    """Scatter bands into out (cell, rank); with ``pairs`` ``start`` holds (begin, end) per cell."""
    for c in range(len(first)):
        a = start[2 * c] if pairs else start[c]
        b = start[2 * c + 1] if pairs else start[c + 1]
        for i in range(b - a):
            out[c, first[c] - 1 + i] = counts[a + i]


@numba.njit(cache=True, nogil=True)
def _totals(start, counts):  # pragma: no cover - compiled
    out = np.zeros(len(start) - 1, np.int64)
    for c in range(len(out)):
        for i in range(start[c], start[c + 1]):
            out[c] += counts[i]
    return out


@numba.njit(cache=True, nogil=True)
def _value_at(first, a, b, counts, k):  # pragma: no cover - compiled
    """The k-th smallest (0-based) counted rank of the band counts[a:b] starting at rank ``first``."""
    cum = 0
    for i in range(b - a):
        cum += counts[a + i]
        if cum > k:
            return first + i
    return first + (b - a) - 1


@numba.njit(cache=True, nogil=True)
def _cell_stats(first, start, counts, nominal, q, tops):  # pragma: no cover - compiled
    n = len(first)
    total = np.zeros(n, np.int64)
    mean = np.full(n, np.nan)
    qs = np.full((n, len(q)), np.nan)
    top = np.zeros((n, len(tops)))
    shift = np.full(n, np.nan)
    pmax = np.zeros(n)
    for c in range(n):
        a, b = start[c], start[c + 1]
        tot = np.int64(0)
        s1 = np.int64(0)
        sa = np.int64(0)
        cmax = np.int64(0)
        for i in range(b - a):
            k = counts[a + i]
            r = np.int64(first[c] + i)
            tot += k
            s1 += k * r
            sa += k * abs(r - nominal[c])
            cmax = max(cmax, k)
        total[c] = tot
        if tot == 0:  # never ranked: mean and shift 0, quantiles NaN (as from a dense histogram)
            mean[c] = 0.0
            shift[c] = 0.0
            continue
        mean[c] = s1 / tot
        shift[c] = sa / tot
        pmax[c] = cmax / tot
        for j in range(len(tops)):
            below = np.int64(0)
            for i in range(min(b - a, max(0, tops[j] - first[c] + 1))):
                below += counts[a + i]
            top[c, j] = below / tot
        for j in range(len(q)):  # numpy's "linear" (type 7) percentile, same arithmetic
            h = (tot - 1) * q[j]
            lo = np.floor(h)
            g = h - lo
            v0 = np.float64(_value_at(first[c], a, b, counts, np.int64(lo)))
            v1 = np.float64(_value_at(first[c], a, b, counts, min(np.int64(lo) + 1, tot - 1)))
            d = v1 - v0
            qs[c, j] = v1 - d * (1 - g) if g >= 0.5 else v0 + d * g
    return total, mean, qs, top, shift, pmax
