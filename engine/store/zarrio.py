"""The zarr v3 result store: creating its layout, writing chunks, finalising, opening.

Layout (all readable with plain ``xarray.open_zarr``; see ``results/README.md``):

* ``score(scenario, city, field)`` float32, ``rank(scenario, city, field)`` int16, ``field`` ending with
  ``overall``; ``rbar(scenario, field)`` float32, the mean absolute rank shift from nominal;
* ``design(scenario, factor)`` float64, ``block(scenario)``, ``sample(scenario)``;
* ``weight(scenario, node)`` and one string variable per discrete choice;
* ``value(city, field, indicator)`` and the dataset metadata; ``nominal_score``/``nominal_rank``;
* ``chunk_done(chunk)`` (the completion record) and ``chunk_rank_count(chunk, city, field, rank_value)``;
  after the last chunk ``rank_count(city, field, rank_value)``, and attrs ``complete = 1``. Large indices
  (attrs ``rank_count_layout = "band"``, see :mod:`engine.stats.rankhist`) have no per-chunk histograms
  and keep the total over each city's band of ranks: ``rank_count_values(rank_band)`` with
  ``rank_count_first``, ``rank_count_start`` and ``rank_count_width`` (city, field).

Strings are variable-length UTF-8 (:data:`STRING`), metadata is consolidated, and every variable carries
the CF attributes of :mod:`engine.store.attributes`.

Each task writes only its own chunk of every per-scenario array and sets its ``chunk_done`` flag last,
so an interrupted run leaves flagged chunks that are whole and unflagged ones that are recomputed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import ZstdCodec
from zarr.core.sync import sync

from ..errors import UserError, option, per_caller
from ..stats.rankhist import RankHistogram
from .attributes import VARIABLES

INDEX_CHUNK = 2**20  # scenarios per chunk of the scenario index
CHOICE_VARS = ("normalisation", "aggregation", "outlier", "imputation", "excluded", "weight_scheme")
# Strings are zarr v3's registered "string" data type with the "vlen-utf8" codec (what zarr-python 3 writes
# for NumPy's StringDType), which other zarr implementations read; NumPy's fixed-width "<U" has no v3 spec.
STRING = np.dtypes.StringDType()


def vlen_strings(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every string variable and coordinate as :data:`STRING` (xarray writes ``<U`` and object
    strings as fixed-width or ambiguous zarr types otherwise)."""
    strings = {name: var.astype(STRING) for name, var in ds.variables.items() if var.dtype.kind in "UO"}
    coords = {k: v for k, v in strings.items() if k in ds.coords}
    out = ds.assign_coords(coords)
    for name, var in strings.items():
        if name not in coords:
            out[name] = var
    return out


def consolidate(path: str | Path) -> None:
    """Consolidate the store's metadata into its root ``zarr.json`` (one read opens every group), after every
    change of metadata. zarr-python warns that consolidated metadata is not in the v3 core spec yet: it is
    an optional addition that readers without it ignore."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part", category=UserWarning)
        zarr.consolidate_metadata(str(path))


def compressor(dtype) -> list:
    """zstd level 1: measured here faster and tighter than blosc-shuffled zstd or lz4 for scores and ranks."""
    return [ZstdCodec(level=1)]


def open_group(path: str | Path, mode: str = "r+") -> zarr.Group:
    return zarr.open_group(str(path), mode=mode, zarr_format=3)


def read_attrs(path: Path) -> dict:
    try:
        return dict(open_group(path, mode="r").attrs)
    except Exception:  # noqa: BLE001 - anything unreadable is "not a rankstab store"
        return {}


def is_store(path: Path) -> bool:
    return "spec_hash" in read_attrs(path)


def done_chunks(path: Path) -> np.ndarray:
    return open_group(path, mode="r")["chunk_done"][:].astype(bool)


_ARRAYS: dict[tuple[str, str, int], zarr.AsyncArray] = {}


async def _array(path: str, name: str, n: int = 0) -> zarr.AsyncArray:
    """The async handle of one array, cached per process and store size ``n`` (array metadata only
    changes when --until-ci grows the store)."""
    key = (path, name, n)
    if key not in _ARRAYS:
        _ARRAYS[key] = await zarr.api.asynchronous.open_array(store=path, path=name, mode="r+", zarr_format=3)
    return _ARRAYS[key]


async def _write_chunk(path: str, a: int, b: int, k: int, arrays: dict[str, np.ndarray],
                       summary: np.ndarray | None, n: int):
    async def put(name: str, sel, data) -> None:
        await (await _array(path, name, n)).setitem(sel, data)

    puts = [put(n, slice(a, b), d) for n, d in arrays.items()]
    if summary is not None:
        puts.append(put("chunk_rank_count", slice(k, k + 1), summary[None]))
    await asyncio.gather(*puts)
    await put("chunk_done", slice(k, k + 1), np.ones(1, dtype=np.int8))


def write_chunk(path: str, a: int, b: int, k: int, arrays: dict[str, np.ndarray], summary: np.ndarray | None,
                n: int = 0) -> None:
    """Write one chunk's arrays and its summary (its dense rank histogram; None for the band layout)
    concurrently, then its completion flag (last). ``n`` is the store's number of scenarios (it keys the
    cached array handles)."""
    sync(_write_chunk(path, a, b, k, arrays, summary, n))


def write_index(scenario: zarr.Array, start: int, stop: int) -> None:
    """Write scenario numbers [start, stop) into the ``scenario`` index, piece by piece (memory independent
    of the number of scenarios)."""
    for a in range(start, stop, INDEX_CHUNK):
        scenario[a : min(stop, a + INDEX_CHUNK)] = np.arange(a, min(stop, a + INDEX_CHUNK))


def finalise(path: Path, rank_count: np.ndarray | RankHistogram) -> None:
    """Write the merged rank histogram (dense, or its band layout), then mark the store complete (the last
    write of a run)."""
    g = open_group(path)
    if "rank_count" in g:
        g["rank_count"][...] = rank_count.dense() if isinstance(rank_count, RankHistogram) else rank_count
    else:
        hist = rank_count.trimmed()
        write_bands(g, "rank_count", hist, hist.counts.astype(np.int64, copy=False))  # int32 in memory, int64 stored
    now = datetime.now(UTC).isoformat(timespec="seconds")
    g.attrs.update({"complete": 1, "finished": now, "date_modified": now})
    consolidate(path)


BAND_CHUNK = 2**22  # entries per chunk of a ``*_values(rank_band)`` array


def write_bands(g: zarr.Group, name: str, hist: RankHistogram, values: np.ndarray) -> None:
    """A histogram's band layout as ``<name>_values(rank_band)`` plus ``<name>_first``, ``<name>_start`` and
    ``<name>_width`` (city, field), replacing earlier ones (a store grown by --until-ci is finalised again)."""
    cf = ["city", "field"]
    parts = {"values": (values, ["rank_band"]), "first": (hist.first.reshape(hist.shape), cf),
             "start": (hist.start[:-1].reshape(hist.shape), cf), "width": (hist.width.reshape(hist.shape), cf)}
    for part, (data, dims) in parts.items():
        chunks = (max(1, min(len(data), BAND_CHUNK)),) if dims == ["rank_band"] else data.shape
        arr = g.create_array(f"{name}_{part}", shape=data.shape, chunks=chunks, dtype=data.dtype, fill_value=0,
                             compressors=compressor(data.dtype), dimension_names=dims, overwrite=True,
                             attributes=VARIABLES.get(f"{name}_{part}", {}))
        arr[...] = data


def remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


@dataclass(frozen=True)
class BigArray:
    """A per-scenario (or per-chunk) array created empty and filled by the tasks (its attributes: the
    :data:`~engine.store.attributes.VARIABLES` entry of its name)."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str | np.dtype
    fill: object
    chunk: int


def create(path: Path, small: xr.Dataset, big: list[BigArray]) -> None:
    """Write the layout: the small variables now (xarray), the big ones as empty zarr arrays."""
    try:
        vlen_strings(small).to_zarr(str(path), mode="w-", zarr_format=3, consolidated=False)  # keeps our lock file
        g = open_group(path)
        for b in big:
            g.create_array(b.name, shape=b.shape, chunks=(b.chunk, *b.shape[1:]), dtype=b.dtype,
                           fill_value=b.fill, compressors=compressor(b.dtype), dimension_names=list(b.dims),
                           attributes=VARIABLES[b.name])
        n = big[0].shape[0]
        scenario = g.create_array("scenario", shape=(n,), chunks=(min(n, INDEX_CHUNK),), dtype="int64", fill_value=-1,
                                  compressors=compressor("int64"), dimension_names=["scenario"])
        scenario.attrs.update(VARIABLES["scenario"])
        write_index(scenario, 0, n)
        consolidate(path)
    except PermissionError:
        raise UserError(f"{path}: permission denied; choose a writable {option('out')}") from None
    except OSError as exc:
        raise UserError(f"{path}: a write failed while creating the store ({exc}); free space or choose "
                        f"another {option('out')}") from None


def open_store(path: str | Path) -> xr.Dataset:
    """Open a store lazily (the plain xarray call downstream code uses)."""
    return xr.open_zarr(str(check_store(path)), consolidated=False)


#: Attributes every reader of a store relies on (a store lacking one was written by another version).
STORE_ATTRS = ("spec_hash", "spec_toml", "n_scenarios", "chunk", "design_kind", "design_n", "block_size",
               "factor_groups", "second_order", "data_hash", "dataset_attrs")


def check_store(path: str | Path) -> Path:
    """``path`` if it is a rankstab store with the attributes readers need, else a clear error."""
    path = Path(path)
    if not path.exists():
        first = per_caller(f"`rankstab run SPEC --out {path}`", f"`engine.run(spec, out={str(path)!r})`")
        raise UserError(f"{path}: no such store; run {first} first")
    if not path.is_dir():
        raise UserError(f"{path}: a file, not a store (a store is a .zarr folder written by `rankstab run`)")
    attrs = read_attrs(path)
    if "spec_hash" not in attrs:
        raise UserError(f"{path}: not a rankstab store (no spec_hash attribute)")
    missing = [k for k in STORE_ATTRS if k not in attrs]
    if missing:
        raise UserError(f"{path}: the store lacks the attribute(s) {', '.join(missing)} (written by another "
                        f"rankstab version, or damaged); run its spec again with {option('overwrite')}")
    return path


def open_meta(path: str | Path) -> xr.Dataset:
    """A store as rankstab itself reads it: lazily, without dask and without the ``scenario`` and ``chunk``
    index coordinates, which xarray would load into memory (8 bytes per scenario). Attributes, inputs,
    nominal results and coordinates other than those are all there; per-scenario arrays stay on disk."""
    return xr.open_zarr(str(check_store(path)), consolidated=False, chunks=None, drop_variables=["scenario", "chunk"])


def dataset_from_store(store: xr.Dataset) -> xr.Dataset:
    """The input dataset as it was loaded, rebuilt from a store (so any scenario can be recomputed)."""
    names = ["value", "denominator_value"]
    ds = store[[n for n in names if n in store]].drop_sel(field="overall")
    keep = [c for c in store.coords if store[c].dims and store[c].dims[0] in ("city", "field", "indicator",
                                                                              "group", "denominator")]
    ds = ds.reset_coords(drop=True).assign_coords({c: store[c].drop_sel(field="overall") if "field" in store[c].dims
                                                   else store[c] for c in keep})
    ds = ds.load()
    ds = ds.assign_coords({k: (v.dims, np.array(v.values.tolist(), dtype=str))  # fixed-width, as loaded
                           for k, v in ds.coords.items() if v.dtype == STRING})
    if "group" not in ds.coords:  # a zero-length dimension does not survive the round trip
        empty = np.array([], dtype=str)
        ds = ds.assign_coords(group=empty, group_name=("group", empty), group_parent=("group", empty),
                              group_weight=("group", np.array([], dtype=float)))
    ds["field_weight"] = ds["field_weight"].astype(float)
    ds.attrs = json.loads(store.attrs["dataset_attrs"])
    return ds
