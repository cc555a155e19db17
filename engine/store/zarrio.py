"""The zarr v3 result store: creating its layout, writing chunks, finalising, opening.

Layout (all readable with plain ``xarray.open_zarr``; see ``results/README.md``):

* ``score(scenario, city, field)`` float32, ``rank(scenario, city, field)`` int16, ``field`` ending with
  ``overall``; ``rbar(scenario, field)`` float32, the mean absolute rank shift from nominal;
* ``design(scenario, factor)`` float64, ``block(scenario)``, ``sample(scenario)``;
* ``weight(scenario, node)`` and one string variable per discrete choice;
* ``value(city, field, indicator)`` and the dataset metadata; ``nominal_score``/``nominal_rank``;
* ``chunk_done(chunk)`` (the completion record) and ``chunk_rank_count(chunk, city, field, rank)``;
  after the last chunk ``rank_count(city, field, rank)``, and attrs ``complete = 1``.

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

from ..errors import UserError, per_caller

INDEX_CHUNK = 2**20  # scenarios per chunk of the scenario index
CHOICE_VARS = ("normalisation", "aggregation", "outlier", "imputation", "excluded", "weight_scheme")
warnings.filterwarnings("ignore", message=".*(unstable|not part of the Zarr|consolidated metadata).*")
warnings.filterwarnings("ignore", category=FutureWarning, module="zarr")


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


async def _write_chunk(path: str, a: int, b: int, k: int, arrays: dict[str, np.ndarray], summary: np.ndarray,
                       n: int):
    async def put(name: str, sel, data) -> None:
        await (await _array(path, name, n)).setitem(sel, data)

    await asyncio.gather(*(put(n, slice(a, b), d) for n, d in arrays.items()),
                         put("chunk_rank_count", slice(k, k + 1), summary[None]))
    await put("chunk_done", slice(k, k + 1), np.ones(1, dtype=np.int8))


def write_chunk(path: str, a: int, b: int, k: int, arrays: dict[str, np.ndarray], summary: np.ndarray,
                n: int = 0) -> None:
    """Write one chunk's arrays and its summary concurrently, then its completion flag (last).
    ``n`` is the store's number of scenarios (it keys the cached array handles)."""
    sync(_write_chunk(path, a, b, k, arrays, summary, n))


def write_index(scenario: zarr.Array, start: int, stop: int) -> None:
    """Write scenario numbers [start, stop) into the ``scenario`` index, piece by piece (memory independent
    of the number of scenarios)."""
    for a in range(start, stop, INDEX_CHUNK):
        scenario[a : min(stop, a + INDEX_CHUNK)] = np.arange(a, min(stop, a + INDEX_CHUNK))


def finalise(path: Path, rank_count: np.ndarray) -> None:
    """Write the merged rank histogram, then mark the store complete (the last write of a run)."""
    g = open_group(path)
    g["rank_count"][...] = rank_count
    g.attrs.update({"complete": 1, "finished": datetime.now(UTC).isoformat(timespec="seconds")})
    zarr.consolidate_metadata(str(path))


def remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


@dataclass(frozen=True)
class BigArray:
    """A per-scenario (or per-chunk) array created empty and filled by the tasks."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    fill: object
    chunk: int
    attrs: dict


def create(path: Path, small: xr.Dataset, big: list[BigArray]) -> None:
    """Write the layout: the small variables now (xarray), the big ones as empty zarr arrays."""
    try:
        small.to_zarr(str(path), mode="w-", zarr_format=3, consolidated=False)  # keeps our lock file
        g = open_group(path)
        for b in big:
            g.create_array(b.name, shape=b.shape, chunks=(b.chunk, *b.shape[1:]), dtype=b.dtype,
                           fill_value=b.fill, compressors=compressor(b.dtype), dimension_names=list(b.dims),
                           attributes=b.attrs)
        n = big[0].shape[0]
        scenario = g.create_array("scenario", shape=(n,), chunks=(min(n, INDEX_CHUNK),), dtype="int64", fill_value=-1,
                                  compressors=compressor("int64"), dimension_names=["scenario"])
        write_index(scenario, 0, n)
    except PermissionError:
        raise UserError(f"{path}: permission denied; choose a writable --out") from None
    except OSError as exc:
        raise UserError(f"{path}: a write failed while creating the store ({exc}); free space or choose "
                        f"another --out") from None


def open_store(path: str | Path) -> xr.Dataset:
    """Open a store lazily (the plain xarray call downstream code uses)."""
    return xr.open_zarr(str(check_store(path)), consolidated=False)


def check_store(path: str | Path) -> Path:
    """``path`` if it is a rankstab store, else a clear error."""
    path = Path(path)
    if not path.exists():
        first = per_caller(f"`rankstab run SPEC --out {path}`", f"`engine.run(spec, out={str(path)!r})`")
        raise UserError(f"{path}: no such store; run {first} first")
    if not is_store(path):
        raise UserError(f"{path}: not a rankstab store (no spec_hash attribute)")
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
    if "group" not in ds.coords:  # a zero-length dimension does not survive the round trip
        empty = np.array([], dtype=str)
        ds = ds.assign_coords(group=empty, group_name=("group", empty), group_parent=("group", empty),
                              group_weight=("group", np.array([], dtype=float)))
    ds["field_weight"] = ds["field_weight"].astype(float)
    ds.attrs = json.loads(store.attrs["dataset_attrs"])
    return ds
