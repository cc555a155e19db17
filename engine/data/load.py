"""Datasets: ``value(city, field, indicator)`` plus the index hierarchy, directions and weights.

An index dataset is an ``xarray.Dataset`` with

* ``value(city, field, indicator)`` float64, NaN = missing;
* per indicator: ``indicator_name``, ``indicator_parent`` (a group code, or "" for the field score),
  ``direction`` (+1/-1), ``indicator_weight`` (nominal), ``indicator_denominator`` ("" for none),
  ``indicator_unit`` ("" when not given);
* per group: ``group_name``, ``group_parent`` ("" = the field score), ``group_weight``;
* per field: ``field_name``, ``field_weight`` (its weight in the overall composite);
* per city: ``city_name``, ``country`` and any grouping columns (listed in attrs ``city_groupings``);
* optional ``denominator_value(city, denominator)``;
* attrs: ``name``, ``title``, ``synthetic``, ``description``, ``source``, ``nominal`` (TOML text).

On disk (embedded datasets and users' own data alike): a tidy ``values.csv``/Parquet with columns
``city, field, indicator, value`` and a ``meta.toml`` (see ``engine/datasets/README.md``).
"""

from __future__ import annotations

import hashlib
import io
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w
import xarray as xr

from ..errors import UserError, did_you_mean

EMBEDDED = Path(__file__).resolve().parent.parent / "datasets"
TIDY_COLUMNS = ("city", "field", "indicator", "value")
MISSING = ("", "NA", "NaN", "nan")  # value texts that mean missing


@dataclass(frozen=True)
class DatasetInfo:
    """One embedded dataset as listed by ``rankstab datasets``."""

    name: str
    title: str
    synthetic: bool
    shape: str
    path: Path


def embedded_names() -> list[str]:
    return sorted(p.name for p in EMBEDDED.iterdir() if (p / "meta.toml").is_file())


def list_datasets() -> list[DatasetInfo]:
    """The embedded datasets, with a one-line description each."""
    out = []
    for name in embedded_names():
        ds = load_dataset(name)
        shape = f"{ds.sizes['city']} cities x {ds.sizes['field']} fields x {ds.sizes['indicator']} indicators"
        out.append(DatasetInfo(name, ds.attrs["title"], bool(ds.attrs["synthetic"]), shape, EMBEDDED / name))
    return out


def load_dataset(source: str | Path, meta: str | Path | None = None) -> xr.Dataset:
    """Load an embedded dataset by name, a folder holding ``meta.toml``, a ``meta.toml`` itself,
    a tidy CSV/Parquet with its metadata file (``meta``), or a NetCDF/zarr dataset."""
    source = str(source)
    if source in embedded_names():
        return _load_meta_toml(EMBEDDED / source / "meta.toml")
    path = Path(source).expanduser()
    if not path.exists():
        hint = did_you_mean(source, embedded_names())
        raise UserError(f'dataset "{source}" is neither an embedded dataset{hint} nor an existing path; '
                        f"run `rankstab datasets` for the embedded ones or give a file path")
    if path.is_dir() and (path / "meta.toml").is_file():
        return _load_meta_toml(path / "meta.toml")
    if path.suffix == ".zarr" or (path.is_dir() and (path / "zarr.json").exists()):
        return validate(_open_xarray(path, zarr=True))
    suffix = path.suffix.lower()
    if suffix in (".nc", ".nc4", ".netcdf"):
        return validate(_open_xarray(path, zarr=False))
    if suffix == ".toml":
        return _load_meta_toml(path)
    if suffix in (".csv", ".parquet", ".pq"):
        if meta is None:
            raise UserError(f"{path}: a tidy data file needs its metadata file; pass --meta META.toml "
                            f"(or META.csv) describing the hierarchy, directions and weights")
        return from_frames(read_table(path), read_meta(Path(meta)), base=Path(meta).parent, sources=(path, meta))
    raise UserError(f"{path}: unknown data format '{suffix}'; use .csv, .parquet, .nc, .zarr or a meta.toml")


def _open_xarray(path: Path, zarr: bool) -> xr.Dataset:
    try:
        ds = xr.open_zarr(path) if zarr else xr.open_dataset(path)
        return ds.load()
    except Exception as exc:  # noqa: BLE001 - any reader failure is a user-fixable bad file
        raise UserError(f"{path}: cannot be read as {'zarr' if zarr else 'NetCDF'} ({exc}); "
                        f"check the file or export it again") from None


def read_table(path: Path) -> pd.DataFrame:
    """Read a tidy CSV or Parquet file (columns city, field, indicator, value)."""
    if not path.exists():
        raise UserError(f"{path}: no such file; check the path")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = _read_values_csv(path)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except ImportError:  # pyarrow is a dependency of rankstab; an installation may still lack it
        raise UserError(f"{path}: reading Parquet needs pyarrow, which is not installed; "
                        f"`pip install pyarrow`, or save the data as CSV") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; it needs a header city,field,indicator,value") from None
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: cannot be read ({exc}); check the file format") from None
    missing = [c for c in TIDY_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; a tidy file has the columns "
                        f"city,field,indicator,value (found: {', '.join(map(str, df.columns))})")
    return df


def _read_values_csv(path: Path) -> pd.DataFrame:
    """The file as the old all-text reading gives it, fast: the values parsed as float64 by the CSV reader
    and the codes' types inferred. The slower all-text reading is left only where these could differ:
    a value that is not a number (which :func:`from_frames` names in its error), true/false (read as 1/0
    by the float parser) and codes that look like numbers or booleans ("007" would become 7)."""
    text = {"city": str, "field": str, "indicator": str}
    try:
        df = pd.read_csv(path, dtype={"value": np.float64}, keep_default_na=False,
                         na_values={"value": list(MISSING)}, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.EmptyDataError):
        raise
    except ValueError:
        df = None  # some value is not a number
    if (df is not None and "value" in df.columns
            and all(pd.api.types.is_string_dtype(df[c].dtype) for c in text if c in df.columns)):
        v = df["value"].to_numpy()
        if not ((v == 0) | (v == 1)).any():
            return df
        lower = path.read_bytes().lower()
        if b"true" not in lower and b"false" not in lower:
            return df
    return pd.read_csv(path, dtype={**text, "value": str}, keep_default_na=False, encoding="utf-8-sig")


def read_meta(path: Path) -> dict:
    """Read a metadata file: TOML (see the module doc) or CSV with columns kind,code,name,parent,weight,..."""
    if not path.exists():
        raise UserError(f"{path}: no such metadata file; check the path")
    if path.suffix.lower() == ".csv":
        return _meta_from_csv(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is accepted
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML ({exc}); fix the syntax at that line") from None


def _meta_from_csv(path: Path) -> dict:
    df = _read_csv(path, "a metadata CSV needs the columns kind,code,weight")
    need = {"kind", "code", "weight"}
    if not need <= set(df.columns):
        raise UserError(f"{path}: a metadata CSV needs the columns kind,code,weight (and parent, direction, "
                        f"name, denominator as needed); found {', '.join(df.columns)}")
    meta: dict = {"field": [], "group": [], "indicator": []}
    for row in df.to_dict("records"):
        kind = row["kind"].strip()
        if kind not in meta:
            raise UserError(f'{path}: kind "{kind}" for code {row["code"]}{did_you_mean(kind, meta)}; '
                            f"use field, group or indicator")
        entry = {k: v for k, v in row.items() if k != "kind" and v != ""}
        for key in ("weight",):
            if key in entry:
                entry[key] = _number(entry[key], f"{path}: weight of {row['code']}")
        if "direction" in entry:
            entry["direction"] = int(_number(entry["direction"], f"{path}: direction of {row['code']}"))
        meta[kind].append(entry)
    return meta


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f'{what} is "{text}", not a number; write a number') from None


def _load_meta_toml(path: Path) -> xr.Dataset:
    meta = read_meta(path)
    base = path.parent
    values = meta.get("values", "values.csv")
    return from_frames(read_table(base / values), meta, base=base, sources=(base / values, path))


def from_frames(values: pd.DataFrame, meta: dict, base: Path | None = None,
                sources: tuple[str | Path, str | Path] | None = None) -> xr.Dataset:
    """Build and validate a dataset from a tidy value table and a metadata mapping; ``sources`` (the data
    and metadata files) are what error messages name."""
    base = base or Path(".")
    name = str(meta.get("name", "custom"))
    data_at, meta_at = (str(s) for s in sources) if sources else (name, name)
    fields = _entries(meta, "field", meta_at)
    groups = _entries(meta, "group", meta_at, required=False)
    indicators = _entries(meta, "indicator", meta_at)
    _check_entries(meta_at, fields, groups, indicators)

    codes, labels = {}, {}
    for col in ("city", "field", "indicator"):
        codes[col], labels[col] = _factorize_codes(values[col])
        blank = values[col].isna().to_numpy() | np.array([lab == "" for lab in labels[col]], bool)[codes[col]]
        if blank.any():
            row = int(np.flatnonzero(blank)[0])
            raise UserError(f"{data_at}: data row {row + 1} (after the header) has a blank {col} code "
                            f"({int(blank.sum())} row(s) in all); fill in the {col} or remove the row")
    num, bad = _numeric(values["value"])
    if bad >= 0:
        c, f, i = (labels[col][codes[col][bad]] for col in ("city", "field", "indicator"))
        raise UserError(f'{data_at}: non-numeric value "{values["value"].iloc[bad]}" for city {c}, field {f}, '
                        f"indicator {i}; write a number or leave it empty for missing")
    dup = _duplicated(codes["city"], codes["field"], codes["indicator"])
    if dup.any():
        r = int(np.argmax(dup))
        c, f, i = (labels[col][codes[col][r]] for col in ("city", "field", "indicator"))
        raise UserError(f"{data_at}: duplicate rows for city {c}, field {f}, indicator "
                        f"{i} ({int(dup.sum())} rows in all); keep one row per city/field/indicator")
    ind_codes = [str(e["code"]) for e in indicators]
    field_codes = [str(e["code"]) for e in fields]
    for col, known, what in (("indicator", ind_codes, "indicator"), ("field", field_codes, "field")):
        unknown = sorted(set(labels[col]) - set(known))
        if unknown:
            raise UserError(f'{data_at}: {what} "{unknown[0]}" in the data is not in the metadata'
                            f"{did_you_mean(unknown[0], known)}; add it to the metadata or remove its rows")
    cities = _city_table(meta, base, sorted(labels["city"], key=str))
    city_codes = list(cities["city"])
    unknown = sorted(set(labels["city"]) - set(city_codes))
    if unknown:
        raise UserError(f'{data_at}: city "{unknown[0]}" in the data is not in the city table; add it there')

    cube = np.full((len(city_codes), len(field_codes), len(ind_codes)), np.nan)
    at = [pd.Index(known).get_indexer(labels[col])[codes[col]]
          for col, known in (("city", city_codes), ("field", field_codes), ("indicator", ind_codes))]
    cube[at[0], at[1], at[2]] = num
    ds = xr.Dataset(
        {"value": (("city", "field", "indicator"), cube)},
        coords={
            "city": city_codes,
            "city_name": ("city", cities["name"].astype(str).tolist()),
            "country": ("city", cities["country"].astype(str).tolist()),
            "field": field_codes,
            "field_name": ("field", [str(e.get("name", e["code"])) for e in fields]),
            "field_weight": ("field", [float(e.get("weight", 1.0)) for e in fields]),
            "indicator": ind_codes,
            "indicator_name": ("indicator", [str(e.get("name", e["code"])) for e in indicators]),
            "indicator_parent": ("indicator", [str(e.get("parent", "")) for e in indicators]),
            "direction": ("indicator", [int(e.get("direction", 1)) for e in indicators]),
            "indicator_weight": ("indicator", [float(e.get("weight", 1.0)) for e in indicators]),
            "indicator_denominator": ("indicator", [str(e.get("denominator", "")) for e in indicators]),
            "indicator_unit": ("indicator", [str(e.get("unit", "")) for e in indicators]),
            "group": np.array([str(e["code"]) for e in groups], dtype=str),
            "group_name": ("group", np.array([str(e.get("name", e["code"])) for e in groups], dtype=str)),
            "group_parent": ("group", np.array([str(e.get("parent", "")) for e in groups], dtype=str)),
            "group_weight": ("group", [float(e.get("weight", 1.0)) for e in groups]),
        },
    )
    extra = [c for c in cities.columns if c not in ("city", "name", "country")]
    for col in extra:
        ds = ds.assign_coords({col: ("city", cities[col].astype(str).tolist())})
    if "denominators" in meta:
        den_path = base / meta["denominators"]
        den = _read_city_csv(den_path, name)
        den = den.set_index("city").reindex(city_codes)
        cols = [c for c in den.columns]
        ds["denominator_value"] = (("city", "denominator"), _denominators(den, cols, den_path))
        ds = ds.assign_coords(denominator=cols)
    ds.attrs.update(
        name=name, title=str(meta.get("title", name)), synthetic=int(bool(meta.get("synthetic", False))),
        description=str(meta.get("description", "")), source=str(meta.get("source", "")),
        city_groupings=",".join(extra), nominal=tomli_w.dumps(meta.get("nominal", {})),
    )
    if "levels" in meta:
        ds.attrs["level_names"] = ",".join(_level_names(meta["levels"], ds, name))
    return validate(ds)


def _level_names(levels, ds: xr.Dataset, name: str) -> list[str]:
    """The metadata's ``levels``: names of the hierarchy's levels bottom-up (indicators first; then the group
    levels, optionally the field and the overall composite), e.g. ["indicator", "pillar", "sub-index"]."""
    from .tree import Tree

    if not isinstance(levels, list) or not all(isinstance(v, str) and v.strip() and "," not in v for v in levels):
        raise UserError(f'{name}: levels must be a list of level names without commas, bottom-up, e.g. '
                        f'levels = ["indicator", "pillar", "sub-index"] (got {levels!r})')
    tree = Tree.from_dataset(ds)
    below = int(tree.heights()[: tree.n_ind + tree.n_grp].max())
    if not below <= len(levels) <= below + 2:
        raise UserError(f"{name}: levels lists {len(levels)} names but the hierarchy has {below} levels below the "
                        f"field (then the field and the overall composite); give {below} to {below + 2} names")
    return [v.strip() for v in levels]


def level_names(ds: xr.Dataset) -> list[str]:
    """A dataset's level names, bottom-up ([] when its metadata names none)."""
    return [v for v in str(ds.attrs.get("level_names", "")).split(",") if v]


def _factorize_codes(column: pd.Series) -> tuple[np.ndarray, list]:
    """Codes of a key column's stripped text and the distinct texts (in order of first appearance)."""
    first, uniques = pd.factorize(column, use_na_sentinel=False)
    stripped = pd.Series(uniques, dtype=object).astype(str).str.strip()
    second, labels = pd.factorize(stripped, use_na_sentinel=False)
    return second[first], list(labels)


def _duplicated(*codes: np.ndarray) -> np.ndarray:
    """Rows whose combination of codes occurs more than once (all of them, as ``keep=False``)."""
    sizes = [int(c.max()) + 1 if len(c) else 1 for c in codes]
    if np.prod(sizes, dtype=float) <= 8 * len(codes[0]) + 1024:  # dense: count every cell
        key = np.ravel_multi_index(codes, sizes)
        return np.bincount(key, minlength=int(np.prod(sizes)))[key] > 1
    return pd.DataFrame(dict(enumerate(codes))).duplicated(keep=False).to_numpy()


def _numeric(raw: pd.Series) -> tuple[np.ndarray, int]:
    """Float64 values of a value column (empty, NA, NaN and nan mean missing) and the position of the
    first value that is not a number (-1 if none)."""
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.astype(float).to_numpy(), -1
    num = pd.to_numeric(raw.replace(dict.fromkeys(MISSING, np.nan)), errors="coerce").astype(float).to_numpy()
    maybe = np.flatnonzero(np.isnan(num) & raw.notna().to_numpy())
    text = raw.iloc[maybe].astype(str).str.strip()
    bad = maybe[~text.isin(MISSING).to_numpy()]
    return num, int(bad[0]) if len(bad) else -1


def _entries(meta: dict, kind: str, name: str, required: bool = True) -> list[dict]:
    entries = meta.get(kind, [])
    if isinstance(entries, dict):
        raise UserError(f"{name}: [{kind}] in the metadata is one table; write [[{kind}]] (double brackets) "
                        f"before each {kind}")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"{name}: {kind} in the metadata must be [[{kind}]] tables, each with a code")
    if required and not entries:
        raise UserError(f"{name}: the metadata has no [[{kind}]] entries; list every {kind} with its code")
    return entries


def _check_entries(name: str, fields: list, groups: list, indicators: list) -> None:
    allowed = {"field": {"code", "name", "weight"},
               "group": {"code", "name", "parent", "weight"},
               "indicator": {"code", "name", "parent", "weight", "direction", "denominator", "unit"}}
    seen: set[str] = set()
    for kind, entries in (("field", fields), ("group", groups), ("indicator", indicators)):
        for e in entries:
            if "code" not in e:
                raise UserError(f"{name}: a [[{kind}]] entry has no code; give each {kind} a code")
            code = str(e["code"])
            if not code.strip() or code != code.strip():
                raise UserError(f'{name}: a [[{kind}]] code is "{code}"; codes must be non-blank without surrounding '
                                f"spaces")
            if kind == "field" and code == "overall":
                raise UserError(f'{name}: field code "overall" is reserved for the composite of all fields; rename '
                                f"that field (in the metadata and the data)")
            for key in e:
                if key not in allowed[kind]:
                    raise UserError(f'{name}: unknown key "{key}" in {kind} {code}'
                                    f"{did_you_mean(key, allowed[kind])}; allowed: {', '.join(sorted(allowed[kind]))}")
            if code in seen:
                raise UserError(f'{name}: code "{code}" is used twice in the metadata; codes must be unique')
            seen.add(code)
            w = e.get("weight", 1.0)
            if not isinstance(w, int | float) or isinstance(w, bool) or not np.isfinite(w) or w <= 0:
                raise UserError(f"{name}: weight of {kind} {code} is {w!r}; weights must be positive numbers")
            if kind == "indicator" and e.get("direction", 1) not in (1, -1):
                raise UserError(f"{name}: direction of indicator {code} is {e.get('direction')!r}; use 1 or -1")
    group_codes = {str(g["code"]) for g in groups}
    for kind, entries in (("group", groups), ("indicator", indicators)):
        for e in entries:
            parent = str(e.get("parent", ""))
            if parent and parent not in group_codes:
                raise UserError(f'{name}: parent "{parent}" of {kind} {e["code"]} is not a group'
                                f'{did_you_mean(parent, group_codes)}; add it as a [[group]] or use "" for the field')
    children = {g: 0 for g in group_codes}
    for e in [*groups, *indicators]:
        if str(e.get("parent", "")) in children:
            children[str(e.get("parent", ""))] += 1
    empty = sorted(g for g, n in children.items() if n == 0)
    if empty:
        raise UserError(f"{name}: group {empty[0]} has no indicators; remove it or assign indicators to it")
    parents = {str(g["code"]): str(g.get("parent", "")) for g in groups}
    for g in parents:
        seen_path, node = {g}, parents[g]
        while node:
            if node in seen_path:
                raise UserError(f"{name}: the group hierarchy has a cycle through {g}; fix the parents")
            seen_path.add(node)
            node = parents[node]


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    """A small CSV read as text; empty, non-UTF-8 or malformed files are one-line errors naming the file."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; {what}") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise UserError(f"{path}: cannot be read as CSV ({' '.join(str(exc).split())[:160]}); {what}") from None


def _read_city_csv(path: Path, name: str) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{name}: {path} (named in the metadata) does not exist; fix the path")
    df = _read_csv(path, "it needs a header with a city column")
    if "city" not in df.columns:
        raise UserError(f"{path}: needs a 'city' column")
    df["city"] = df["city"].str.strip()
    if (df["city"] == "").any():
        row = int(np.flatnonzero((df["city"] == "").to_numpy())[0])
        raise UserError(f"{path}: row {row + 1} has a blank city code; fill it in or remove the row")
    return df


def _denominators(den: pd.DataFrame, cols: list[str], path: Path) -> np.ndarray:
    """Denominator values: numbers, or empty for missing; zero, negative, infinite or non-numeric values
    are errors (dividing by them would silently lose or distort a value)."""
    out = np.full((len(den), len(cols)), np.nan)
    for j, col in enumerate(cols):
        text = den[col].fillna("").astype(str).str.strip()
        num = pd.to_numeric(text.replace({"NA": "", "NaN": "", "nan": ""}), errors="coerce").to_numpy(float)
        given = ~text.isin(["", "NA", "NaN", "nan"]).to_numpy()
        bad = given & (np.isnan(num) | ~np.isfinite(num) | (num <= 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f'{path}: denominator {col} of city {den.index[i]} is "{text.iloc[i]}"; a denominator '
                            f"must be a positive number (leave it empty when it is missing)")
        out[:, j] = num
    return out


def _city_table(meta: dict, base: Path, codes: list[str]) -> pd.DataFrame:
    if "cities" not in meta:
        return pd.DataFrame({"city": codes, "name": codes, "country": [""] * len(codes)})
    path = base / meta["cities"]
    df = _read_city_csv(path, str(meta.get("name", "")))
    missing = sorted(set(codes) - set(df["city"]))
    if missing:
        raise UserError(f"{path}: city {missing[0]} has data but no row in the city table; add it")
    if df["city"].duplicated().any():
        raise UserError(f"{path}: city {df['city'][df['city'].duplicated()].iloc[0]} is listed twice; list it once")
    df = df[df["city"].isin(codes)].reset_index(drop=True)
    if "name" not in df.columns:
        df["name"] = df["city"]
    if "country" not in df.columns:
        df["country"] = ""
    return df


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Check a dataset's data against its metadata; raise a one-line UserError on the first problem."""
    name = ds.attrs.get("name", "dataset")
    if "value" not in ds or ds["value"].dims != ("city", "field", "indicator"):
        raise UserError(f"{name}: needs a variable value(city, field, indicator)")
    v = ds["value"].values
    if not np.issubdtype(v.dtype, np.floating):
        raise UserError(f"{name}: value must be numeric (found {v.dtype})")
    if np.isinf(v).any():
        c, f, i = (int(k[0]) for k in np.nonzero(np.isinf(v)))
        raise UserError(f"{name}: the value of city {ds.city.values[c]}, field {ds.field.values[f]}, indicator "
                        f"{ds.indicator.values[i]} is infinite ({int(np.isinf(v).sum())} in all); replace it by a "
                        f"number or leave it empty for missing")
    have = ~np.isnan(v)
    for c in np.flatnonzero(~have.any(axis=(1, 2))):
        raise UserError(f"{name}: city {ds.city.values[c]} has no value in any field; remove the city "
                        f"or give it data")
    count = have.sum(axis=0)  # (field, indicator)
    lo = np.where(have, v, np.inf).min(axis=0, initial=np.inf)
    hi = np.where(have, v, -np.inf).max(axis=0, initial=-np.inf)
    problem = (count == 0) | ((count > 1) & (lo == hi))
    if problem.any():
        f, i = np.unravel_index(np.argmax(problem), problem.shape)  # the first in field, indicator order
        where = f"indicator {ds.indicator.values[i]} in field {ds.field.values[f]}"
        if count[f, i] == 0:
            raise UserError(f"{name}: {where} is missing for every city; remove the indicator or give it data")
        first = v[:, f, i][have[:, f, i]][0]
        raise UserError(f"{name}: {where} is constant ({first:g} for every city) and cannot be "
                        f"normalised; remove the indicator or check the data")
    for d in set(ds["indicator_denominator"].values) - {""}:
        if "denominator_value" not in ds or d not in list(ds["denominator"].values):
            raise UserError(f'{name}: denominator "{d}" is not a column of the denominators table; add it')
    return ds


def data_hash(ds: xr.Dataset) -> str:
    """A SHA-256 of the values and every piece of metadata that changes results."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ds["value"].values, dtype=np.float64).tobytes())
    for name in ("city", "field", "field_weight", "indicator", "indicator_parent", "direction",
                 "indicator_weight", "indicator_denominator", "group", "group_parent", "group_weight"):
        h.update(name.encode())
        h.update(repr(ds[name].values.tolist()).encode())
    if "denominator_value" in ds:
        h.update(np.ascontiguousarray(ds["denominator_value"].values, dtype=np.float64).tobytes())
    for g in ds.attrs.get("city_groupings", "").split(","):
        if g:
            h.update(repr(ds[g].values.tolist()).encode())
    return h.hexdigest()


def nominal_settings(ds: xr.Dataset) -> dict:
    """The dataset's own nominal methodology (its meta.toml [nominal] table)."""
    return tomllib.load(io.BytesIO(ds.attrs.get("nominal", "").encode()))
